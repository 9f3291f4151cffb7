"""Recall for one turn: passages from memory under a token budget, in the prompt's format.

The format (documented in docs/llm.md) is a header line, then per passage its
``[source:start-end]`` label on a line of its own and the passage text. A passage longer than
its share of the budget is cut to the whole lines around the line sharing most words with
the question. :func:`recall_passages` also returns the tokens it used, so the caller sizes the
prompt without counting the block again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engram_sdk.llm.base import Backend

if TYPE_CHECKING:
    from engram_sdk.memory import Memory
    from engram_sdk.memory.models import Passage
    from engram_sdk.sessions import Session

MEMORY_HEADER = "Passages from memory:"


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


def clip_head(backend: Backend, text: str, tokens: int) -> str:
    """The end of ``text`` in about ``tokens`` tokens."""
    keep = len(text)
    while keep > 0 and backend.count_tokens(text[-keep:]) > tokens:
        keep = keep * 3 // 4
    return text[-keep:] if keep else ""


def _clip_around(backend: Backend, lines: list[str], query: str, tokens: int) -> tuple[int, int]:
    """The widest run of whole ``lines`` around the line sharing most words with ``query``.

    Line costs are counted once and summed (a newline costs one token), so this is linear.
    """
    words = {w for w in re.findall(r"\w+", query.lower()) if len(w) > 2}
    at = max(
        range(len(lines)), key=lambda i: len(words & set(re.findall(r"\w+", lines[i].lower())))
    )
    cost = [backend.count_tokens(line) + 1 for line in lines]
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


def _excerpt(backend: Backend, passage: Passage, query: str, tokens: int) -> tuple[Passage, str]:
    """The passage, or its lines around the query's best line when it is over ``tokens``."""
    label = f"[{passage.source}:{passage.line_start}-{passage.line_end}]"
    text = f"{label}\n{passage.text.strip()}"
    if backend.count_tokens(text) <= tokens:
        return passage, text
    lines = passage.text.splitlines()
    lo, hi = _clip_around(backend, lines, query, tokens - 16)
    first, last = passage.line_start + lo, passage.line_start + hi - 1
    body = clip_head(backend, "\n".join(lines[lo:hi]), tokens - 16)
    text = f"[{passage.source}:{first}-{last}]\n{body}"
    return passage.model_copy(update={"line_start": first, "line_end": last}), text


def recall_passages(
    backend: Backend,
    memory: Memory,
    *,
    query: str,
    scope: str,
    budget: int,
    session: Session | None = None,
    first_kept_seq: int | None = None,
    k: int = 20,
) -> Recalled:
    """Recalled passages in the prompt format, at most ``budget`` tokens (see the module docs).

    Passages of ``session`` itself are left out when they are still in the prompt (turns
    from ``first_kept_seq`` on).
    """
    sid = memory.scope_id(scope)
    if sid is None or not query.strip():
        return Recalled("", [], 0)
    hits = memory.search(query, k=k, scope=scope)
    passages = memory.passages(sid, [h.passage_id for h in hits])
    own = session.source if session is not None else None
    parts = [MEMORY_HEADER]
    used = backend.count_tokens(MEMORY_HEADER)
    per_passage = max(48, budget // 3)
    citations: list[Citation] = []
    for hit, passage in zip(hits, passages, strict=True):
        if passage is None:
            continue
        if own is not None and passage.source == own:
            seq = passage.metadata.get("seq")
            if first_kept_seq is None or not isinstance(seq, int) or seq >= first_kept_seq:
                continue
        room = min(per_passage, budget - used) - 16
        if room < 8:
            break
        passage, text = _excerpt(backend, passage, query, room)
        n = backend.count_tokens(text) + 2
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


def recall_block(
    backend: Backend,
    memory: Memory,
    *,
    query: str,
    scope: str,
    budget: int,
    session: Session | None = None,
    first_kept_seq: int | None = None,
    k: int = 20,
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
    )
    return got.block, got.citations
