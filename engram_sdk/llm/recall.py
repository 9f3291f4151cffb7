"""Recall for one turn: passages from memory under a token budget, in the prompt's format.

The format (documented in docs/llm.md) is a header line, then per passage its
``[source:start-end]`` label on a line of its own and the passage text. A passage longer than
its share of the budget is cut to the whole lines around the line sharing most words with
the question. :func:`recall_passages` also returns the tokens it used, so the caller sizes the
prompt without counting the block again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from engram_sdk.errors import InputError
from engram_sdk.llm.base import Backend
from engram_sdk.llm.counting import counter_for
from engram_sdk.llm.focused import focused_lines
from engram_sdk.llm.recall_cache import RecallCache

if TYPE_CHECKING:
    from engram_sdk.memory import Memory
    from engram_sdk.memory.models import Hit, Passage
    from engram_sdk.sessions import Session

MEMORY_HEADER = "Passages from memory:"
#: how recalled text goes into the prompt: whole passages under their labels, or only the
#: lines holding the question's terms, each cited (:mod:`engram_sdk.llm.focused`)
RecallFormat = Literal["passages", "focus"]
RECALL_FORMATS: tuple[str, ...] = get_args(RecallFormat)
#: how recall's search matches its query (:func:`recall_match`)
RecallMatch = Literal["phrase", "words"]
WORD = re.compile(r"\w+")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: passages scoring under this share of the best recalled one are left out (they crowd the
#: one that answers, and a small model copies from the wrong one)
SCORE_FLOOR = 1 / 3
#: words that, just before a code name in a question, are kept in the recall query
DECLARATION_WORDS = frozenset({"class", "def", "struct", "enum", "interface", "trait", "fn"})


@dataclass(frozen=True)
class Citation:
    """A passage that was in the prompt."""

    source: str
    line_start: int
    line_end: int
    score: float
    passage_id: int

    @property
    def label(self) -> str:
        """``source:start-end`` as the prompt writes it."""
        return f"{self.source}:{self.line_start}-{self.line_end}"


@dataclass(frozen=True)
class Recalled:
    """The block of passages for a prompt, its citations and its size in tokens."""

    block: str
    citations: list[Citation]
    tokens: int


def clip_head(backend: Backend, text: str, tokens: int, counted: int | None = None) -> str:
    """The end of ``text`` in at most ``tokens`` tokens (``counted``: its size, if known).

    Each try cuts in proportion to the overshoot, so it takes one or two counts."""
    n = backend.count_tokens(text) if counted is None else counted
    keep = len(text)
    while n > tokens and keep > 0:
        keep = min(keep - 1, int(keep * tokens / n * 0.95))
        n = backend.count_tokens(text[-keep:]) if keep > 0 else 0
    return text[-keep:] if keep > 0 else ""


def _code_like(word: str) -> bool:
    """``snake_case``, ``_private``, ``CamelCase``/``mixedCase``, or a name with digits
    (``word`` is a :data:`NAME`: ASCII letters, digits and ``_``)."""
    if "_" in word or not word.isalpha():
        return True
    rest = word[1:]
    return rest != rest.lower() and word != word.upper()  # an upper past the first, a lower


def code_names(message: str) -> list[str]:
    """The code names in ``message`` (see :func:`recall_query`)."""
    return [word for word in NAME.findall(message) if _code_like(word)]


def recall_query(message: str) -> str:
    """What recall searches for: the code names in ``message`` (``JSONDecoder``,
    ``py_make_scanner``), each once, with a declaration word just before it kept
    (``class X``), else the message as it is. A question's other words ("which file defines
    the") occur everywhere and would outrank the one passage that holds the name."""
    words = NAME.findall(message)
    terms: list[str] = []
    seen: set[str] = set()
    for i, word in enumerate(words):
        if _code_like(word) and word not in seen:
            seen.add(word)
            if i and words[i - 1].lower() in DECLARATION_WORDS:
                terms.append(words[i - 1].lower())
            terms.append(word)
    return " ".join(terms) if terms else message


def recall_match(message: str) -> RecallMatch:
    """How recall's search matches :func:`recall_query` of ``message``: ``"words"`` when
    that query is no quote, so its exact phrase occurs nowhere and looking for it only makes
    the search verify every candidate (several code names, joined by recall itself, or a
    question without one, worded by the asker); else ``"phrase"`` (one name, perhaps with its
    declaration word, or a message that may be a pasted line). Where the phrase occurs
    nowhere both give the same hits (:meth:`~engram_sdk.memory.Memory.search`)."""
    names = set(code_names(message))
    if len(names) > 1:
        return "words"
    return "words" if not names and message.rstrip().endswith("?") else "phrase"


def shown_sources(sources: list[str]) -> Callable[[str], str]:
    """How a passage's source is written in the prompt: file paths relative to the folder
    the recalled files share (a small model copies ``decoder.py`` more readily than a long
    absolute path); other sources as they are. Citations keep the full source."""
    paths = [s for s in sources if os.path.isabs(s)]
    if not paths:
        return lambda source: source
    try:
        base = os.path.commonpath([os.path.dirname(p) for p in paths])
    except ValueError:  # paths on different drives
        return lambda source: source

    relative = {p: os.path.relpath(p, base) for p in set(paths)}
    return lambda source: relative.get(source, source)


def _line_costs(lines: list[str], total: int) -> list[int]:
    """Each line's share of a passage's ``total`` tokens, by its length (one count per
    passage instead of one per line; the excerpt is counted exactly afterwards)."""
    chars = sum(len(line) + 1 for line in lines) or 1
    return [2 + total * (len(line) + 1) // chars for line in lines]


def _clip_around(lines: list[str], query: str, tokens: int, cost: list[int]) -> tuple[int, int]:
    """The widest run of whole ``lines`` around the line sharing most words with ``query``,
    within ``tokens`` by the lines' ``cost``."""
    words = {w for w in WORD.findall(query.lower()) if len(w) > 2}
    at = max(range(len(lines)), key=lambda i: len(words & set(WORD.findall(lines[i].lower()))))
    lo, hi, used = at, at + 1, cost[at]
    while True:
        if hi < len(lines) and used + cost[hi] <= tokens:
            used += cost[hi]
            hi += 1
        elif lo > 0 and used + cost[lo - 1] <= tokens:
            lo -= 1
            used += cost[lo]
        else:
            return lo, hi


def _trim(lines: list[str], lo: int, hi: int) -> tuple[int, int]:
    """``lo, hi`` without the blank lines at either end."""
    while lo < hi and not lines[lo].strip():
        lo += 1
    while hi > lo and not lines[hi - 1].strip():
        hi -= 1
    return lo, hi


def _excerpt(
    backend: Backend, passage: Passage, query: str, tokens: int, source: str
) -> tuple[Passage, str, int] | None:
    """The passage's lines (blank ones at the ends left out), or those around the query's best
    line when they are over ``tokens``; with the size in tokens. None for a blank passage.
    ``source`` is how the prompt names the passage's source."""
    lines = passage.text.splitlines()
    lo, hi = _trim(lines, 0, len(lines))
    if lo == hi:
        return None
    text = f"[{source}:{passage.line_start + lo}-{passage.line_start + hi - 1}]\n"
    text += "\n".join(lines[lo:hi])
    n = backend.count_tokens(text)
    if n > tokens:
        lo, hi = _clip_around(lines, query, tokens - 16, _line_costs(lines, n))
        lo, hi = _trim(lines, lo, hi)
        if lo == hi:
            return None
        head = f"[{source}:{passage.line_start + lo}-{passage.line_start + hi - 1}]\n"
        body = "\n".join(lines[lo:hi])
        n = backend.count_tokens(head + body)
        if n > tokens:
            body = clip_head(backend, body, tokens - 16, n)
            n = backend.count_tokens(head + body)
        text = head + body
    first, last = passage.line_start + lo, passage.line_start + hi - 1
    return passage.model_copy(update={"line_start": first, "line_end": last}), text, n


def recall_k(budget: int) -> int:
    """How many hits recall asks the search for under ``budget`` tokens: the passages that can
    fit (each takes at most a third of the budget, so three, or more for a large budget cut
    down to 48-token excerpts) and a few spare for those left out. Top-k search stops once it
    has them; asking for 20 cost a 143 MB memory 4x the search time of asking for 5."""
    fits = max(3, budget // max(48, budget // 3))
    return min(fits + 2, 20)


def recall_passages(
    backend: Backend,
    memory: Memory,
    *,
    query: str,
    scope: str,
    budget: int,
    session: Session | None = None,
    first_kept_seq: int | None = None,
    k: int | None = None,
    context: RecallFormat = "passages",
    cache: RecallCache | None = None,
) -> Recalled:
    """Recalled passages in the prompt format, at most ``budget`` tokens (see the module docs).

    Passages of ``session`` itself are left out when they are still in the prompt (turns
    from ``first_kept_seq`` on). ``k``: hits asked of the search (default
    :func:`recall_k`). ``context="focus"`` keeps only the lines holding the question's terms
    (:mod:`engram_sdk.llm.focused`), falling back to passages when no line holds one.
    ``cache`` keeps recalls while the scope is unchanged (:mod:`engram_sdk.llm.recall_cache`).
    """
    if context not in RECALL_FORMATS:
        raise InputError(f"context {context!r}: expected one of {', '.join(RECALL_FORMATS)}")

    def compute() -> Recalled:
        return _recall(backend, memory, query, scope, budget, session, first_kept_seq, k, context)

    if cache is None:
        return compute()
    own = session.source if session is not None else None
    got = cache.recall(memory, scope, (query, budget, context, k, own, first_kept_seq), compute)
    return Recalled(got.block, list(got.citations), got.tokens)


def _recall(
    backend: Backend,
    memory: Memory,
    query: str,
    scope: str,
    budget: int,
    session: Session | None,
    first_kept_seq: int | None,
    k: int | None,
    context: RecallFormat,
) -> Recalled:
    sid = memory.scope_id(scope)
    if sid is None or not query.strip():
        return Recalled("", [], 0)
    searched = recall_query(query)
    hits = memory.search(searched, k=k or recall_k(budget), scope=scope, match=recall_match(query))
    passages = memory.passages(sid, [h.passage_id for h in hits])
    shown = shown_sources([p.source for p in passages if p is not None])
    own = session.source if session is not None else None
    eligible = [
        (hit, passage)
        for hit, passage in zip(hits, passages, strict=True)
        if passage is not None and not _in_prompt(passage, own, first_kept_seq)
    ]
    floor = max((hit.score for hit, _ in eligible), default=0.0) * SCORE_FLOOR
    eligible = [(hit, passage) for hit, passage in eligible if hit.score >= floor]
    header = counter_for(backend).text(MEMORY_HEADER)
    if context == "focus":
        texts, lines, used = focused_lines(
            backend,
            eligible,
            query=query,
            phrase=searched,
            names=code_names(query),
            budget=budget - header,
            shown=shown,
        )
        if lines:
            citations = [
                Citation(f.passage.source, f.line, f.line, f.hit.score, f.hit.passage_id)
                for f in lines
            ]
            block = MEMORY_HEADER + "\n\n" + "\n".join(texts)
            return Recalled(block, citations, header + used + 2)
    return _passages_block(backend, eligible, query, budget, header, shown)


def _passages_block(
    backend: Backend,
    eligible: list[tuple[Hit, Passage]],
    query: str,
    budget: int,
    used: int,
    shown: Callable[[str], str],
) -> Recalled:
    """The ``passages`` format: each passage (best first) under its label, cut to its share."""
    parts = [MEMORY_HEADER]
    per_passage = max(48, budget // 3)
    citations: list[Citation] = []
    for hit, passage in eligible:
        room = min(per_passage, budget - used) - 16
        if room < 8:
            break
        got = _excerpt(backend, passage, query, room, shown(passage.source))
        if got is None:
            continue
        passage, text, n = got
        n += 2
        if used + n > budget:
            continue
        parts.append(text)
        used += n
        citations.append(
            Citation(
                passage.source, passage.line_start, passage.line_end, hit.score, hit.passage_id
            )
        )
    if not citations:
        return Recalled("", [], 0)
    return Recalled("\n\n".join(parts), citations, used)


def _in_prompt(passage: Passage, own: str | None, first_kept_seq: int | None) -> bool:
    """Whether ``passage`` is a turn of this session that the prompt still holds."""
    if own is None or passage.source != own:
        return False
    seq = passage.metadata.get("seq")
    return first_kept_seq is None or not isinstance(seq, int) or seq >= first_kept_seq


def recall_block(
    backend: Backend,
    memory: Memory,
    *,
    query: str,
    scope: str,
    budget: int,
    session: Session | None = None,
    first_kept_seq: int | None = None,
    k: int | None = None,
    context: RecallFormat = "passages",
) -> tuple[str, list[Citation]]:
    """The block of :func:`recall_passages` and its citations."""
    got = recall_passages(
        backend,
        memory,
        query=query,
        scope=scope,
        budget=budget,
        session=session,
        first_kept_seq=first_kept_seq,
        k=k,
        context=context,
    )
    return got.block, got.citations
