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
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING

from engram_sdk.llm.base import Backend
from engram_sdk.llm.terms import TERM, query_terms

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


#: what :func:`definition_pattern` matches, with the defined identifier captured, compiled
#: once: a question's own pattern took half a millisecond to compile, more than its scoring
_DECLARED = re.compile(rf"^{_DECLARATION}([A-Za-z_][A-Za-z0-9_]*)\b")
_ASSIGNED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]*)?=(?!=)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _definition_check(names: Sequence[str]) -> Callable[[str], bool] | None:
    """Whether a (stripped) line defines one of ``names``, as :func:`definition_pattern`
    says; without compiling a pattern when every name is an identifier."""
    if not names:
        return None
    if not all(_IDENTIFIER.fullmatch(n) for n in names):
        pattern = definition_pattern(names)
        return lambda text: pattern is not None and pattern.match(text) is not None
    wanted = frozenset(names)

    def defines(text: str) -> bool:
        declared = _DECLARED.match(text)
        if declared is not None and declared.group(1) in wanted:
            return True
        assigned = _ASSIGNED.match(text)
        return assigned is not None and assigned.group(1) in wanted

    return defines


def _lines_holding(lowered: str, needles: set[str]) -> list[int]:
    """Indices (as ``str.splitlines`` numbers them) of the lines of ``lowered`` holding one
    of ``needles`` (none of which holds a line break), found by ``str.find``."""
    present = [n for n in needles if n in lowered]
    if not present:
        return []
    # lower-casing never adds or removes a line break, so these are the original's lines
    starts = list(accumulate(map(len, lowered.splitlines(keepends=True)), initial=0))
    found: set[int] = set()
    for needle in present:
        at = lowered.find(needle)
        while at >= 0:
            line = bisect_right(starts, at) - 1
            found.add(line)
            at = lowered.find(needle, starts[line + 1])  # the rest of this line is done
    return sorted(found)


def scored_lines(
    recalled: list[tuple[Hit, Passage]], query: str, phrase: str, names: Sequence[str] = ()
) -> list[FocusedLine]:
    """Every non-blank line of the ``recalled`` passages (best first) holding a query term:
    the distinct terms it holds, plus :data:`PHRASE_BONUS` when it holds ``phrase`` (case
    folded) and :data:`DEFINITION_BONUS` when it defines one of the code ``names``.

    Only lines whose lower-cased text contains a term, the phrase or a name are scored (a
    line that scores holds one of them), found with ``str.find`` over each passage."""
    terms = query_terms(query)
    phrase = phrase.strip().lower()
    defines = _definition_check(names)
    needles = {*terms, *(n.lower() for n in names), *([phrase] if phrase else [])}
    needles = {n for n in needles if n.splitlines() == [n]}  # no line can hold a line break
    out: list[FocusedLine] = []
    for rank, (hit, passage) in enumerate(recalled):
        raws = passage.text.splitlines()
        for i in _lines_holding(passage.text.lower(), needles):
            raw = raws[i]
            text = raw.strip()
            low = text.lower()
            held = (
                terms.intersection(TERM.findall(low))
                if raw.isascii()
                else terms & query_terms(text)
            )
            score = len(held)
            if phrase and phrase in low:
                score += PHRASE_BONUS
            if defines is not None and defines(text):
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
    ranked = sorted((f for f in lines if f.score == best), key=lambda f: (f.rank, f.line))
    texts = [_prompt_line(f, shown) for f in ranked[:MAX_LINES]]
    # a token is at least a byte: when the lines fit by bytes, they fit, and one count of
    # the block they make replaces one per line
    if sum(len(t.encode()) + 1 for t in texts) <= budget:
        chosen, used = ranked[: len(texts)], backend.count_tokens("\n".join(texts)) + 1
    else:
        chosen, texts, used = _fit(backend, ranked, texts, budget)
    order = sorted(range(len(chosen)), key=lambda i: (-chosen[i].rank, chosen[i].line))
    return [texts[i] for i in order], [chosen[i] for i in order], used


def _prompt_line(f: FocusedLine, shown: Callable[[str], str]) -> str:
    source = shown(f.passage.source)
    return f"{source}:{f.line}: {f.text}{SOURCE_AGAIN.format(source=source)}"


def _fit(
    backend: Backend, ranked: list[FocusedLine], texts: list[str], budget: int
) -> tuple[list[FocusedLine], list[str], int]:
    """The first lines that fit ``budget`` by their exact counts."""
    used, kept = 0, 0
    for text in texts:
        n = backend.count_tokens(text) + 1
        if used + n > budget:
            break
        used += n
        kept += 1
    return ranked[:kept], texts[:kept], used
