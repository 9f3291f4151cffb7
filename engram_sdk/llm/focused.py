"""The ``focus`` prompt format: the recalled lines that hold the question's terms, cited.

A small reader copies from what sits next to the question, and from a whole passage it copies
the wrong line as readily as the right one. So, as the evals' ``--memory-context focus`` does
(both score lines by the terms of :mod:`engram_sdk.llm.terms`), only the lines of the recalled
passages that hold the most of the query's terms are kept, each with its own citation, in
the ``file:line: text`` shape of ``grep -n`` output, the file named once more at the end::

    Passages from memory:

    encoder.py:37: ...a line of a weaker passage...    (in encoder.py)
    decoder.py:254: class JSONDecoder(object):    (in decoder.py)

The best line comes last, nearest the question. A line that defines one of the question's
code names (``class JSONDecoder``) outranks one that holds the recall query as written, which
outranks any line holding only some of its words. On the quickstart's questions SmolLM2-135M
named the right file 9/10 times from these lines, 7/10 from bare ``grep -n`` lines, 3/10 from
``[file:line] text`` lines and 3/10 from whole passages (docs/llm.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engram_sdk.llm.base import Backend
from engram_sdk.llm.terms import query_terms

if TYPE_CHECKING:
    from engram_sdk.memory.models import Hit, Passage

#: a line longer than this is cut (minified code, data): the reader needs the match, not all
MAX_LINE_CHARS = 240
#: after each line, its source once more, where the reader's answer starts
SOURCE_AGAIN = "    (in {source})"
#: at most this many lines, however much budget is left
MAX_LINES = 12
#: score of holding the whole recall query, above any count of its words
PHRASE_BONUS = 100
#: score of defining one of the query's code names (``def name``, ``class Name``,
#: ``NAME = ...``): where a name is defined says most about it
DEFINITION_BONUS = 1000
_KEYWORDS = ("def", "class", "struct", "enum", "interface", "trait", "fn", "function", "const")
_DECLARATION = rf"(?:export\s+)?(?:async\s+)?(?:{'|'.join((*_KEYWORDS, 'let', 'var', 'type'))})\s+"


@dataclass(frozen=True)
class FocusedLine:
    """One line of a recalled passage, scored against the query."""

    score: int
    rank: int  # the passage's place in the recall order (0: best)
    line: int  # 1-based line number in the source
    text: str
    hit: Hit
    passage: Passage


def definition_pattern(names: Sequence[str]) -> re.Pattern[str] | None:
    """A line that defines one of ``names``: a declaration keyword then the name, or the name
    assigned at the start of the line; None without names."""
    if not names:
        return None
    alts = "|".join(re.escape(n) for n in names)
    return re.compile(rf"^(?:{_DECLARATION}(?:{alts})\b|(?:{alts})\s*(?::[^=]*)?=(?!=))")


def scored_lines(
    recalled: list[tuple[Hit, Passage]], query: str, phrase: str, names: Sequence[str] = ()
) -> list[FocusedLine]:
    """Every non-blank line of the ``recalled`` passages (best first) holding a query term:
    the distinct terms it holds, plus :data:`PHRASE_BONUS` when it holds ``phrase`` (case
    folded) and :data:`DEFINITION_BONUS` when it defines one of the code ``names``."""
    terms = query_terms(query)
    phrase = phrase.strip().lower()
    defines = definition_pattern(names)
    out: list[FocusedLine] = []
    for rank, (hit, passage) in enumerate(recalled):
        for i, raw in enumerate(passage.text.splitlines()):
            text = raw.strip()
            if not text:
                continue
            score = len(terms & query_terms(text))
            if phrase and phrase in text.lower():
                score += PHRASE_BONUS
            if defines is not None and defines.match(text):
                score += DEFINITION_BONUS
            if score:
                line = passage.line_start + i
                out.append(FocusedLine(score, rank, line, text[:MAX_LINE_CHARS], hit, passage))
    return out


def focused_lines(
    backend: Backend,
    recalled: list[tuple[Hit, Passage]],
    *,
    query: str,
    phrase: str,
    names: Sequence[str] = (),
    budget: int,
    shown: Callable[[str], str],
) -> tuple[list[str], list[FocusedLine], int]:
    """The best-scoring lines (ties all kept, best passage first) that fit ``budget`` tokens,
    as prompt lines in reading order (best last), the lines chosen and their tokens."""
    lines = scored_lines(recalled, query, phrase, names)
    if not lines:
        return [], [], 0
    best = max(f.score for f in lines)
    chosen: list[FocusedLine] = []
    texts: list[str] = []
    used = 0
    for f in sorted((f for f in lines if f.score == best), key=lambda f: (f.rank, f.line)):
        source = shown(f.passage.source)
        text = f"{source}:{f.line}: {f.text}{SOURCE_AGAIN.format(source=source)}"
        n = backend.count_tokens(text) + 1
        if used + n > budget or len(chosen) >= MAX_LINES:
            break
        chosen.append(f)
        texts.append(text)
        used += n
    order = sorted(range(len(chosen)), key=lambda i: (-chosen[i].rank, chosen[i].line))
    return [texts[i] for i in order], [chosen[i] for i in order], used
