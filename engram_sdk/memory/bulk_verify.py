"""``k="all"``: every candidate verified fragment by fragment, on bytes, without a passage
object per candidate.

Listing every passage that holds a common identifier verifies tens of thousands of
candidates; per passage, building a text string, a header and a hit through the general
path costs more than the search itself. Candidates come sorted, so consecutive ones share a
fragment (:mod:`engram_sdk.memory.text_store`); for a *plain* passage (ASCII, lines broken
at ``\\n`` only) and an ASCII query, each candidate is checked with ``bytes.find`` (or a
compiled bytes pattern for whitespace runs) between its offsets in the fragment's text and
its lowered copy, and its hit's line and snippet come from the same bytes. Everything else
(non-ASCII text or queries, filters) takes the general path, passage by passage, so the
hits are the same either way.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable, Iterable
from typing import Any

from engram_sdk.memory.fold import fold_query
from engram_sdk.memory.models import Hit
from engram_sdk.memory.text_store import Fragment
from engram_sdk.memory.verify import Loaded, from_fragments_of, trusted_hit

_ASCII_SPACE_RUN = rb"[\t-\r\x1c- ]+"  # the bytes str ``\s`` matches in ASCII text

Fallback = Callable[[list[Loaded]], list[Hit]]
"""The general path: hits of the given passages."""


class BytesQuery:
    """A substring query ready for plain fragments: exact bytes and a folded finder."""

    @staticmethod
    @functools.lru_cache(maxsize=1024)
    def of(query: str) -> BytesQuery:
        """The query's :class:`BytesQuery`, remembered (nothing in it changes)."""
        return BytesQuery(query)

    def __init__(self, query: str) -> None:
        folded = fold_query(query)
        self.usable = folded.isascii() and query.isascii()
        self.exact = query.encode("ascii", "replace")
        self.folded = folded.encode("ascii", "replace")
        self.folded_text = folded
        self.spaced = None
        if self.usable and b" " in self.folded:
            words = self.folded.split(b" ")
            self.spaced = re.compile(_ASCII_SPACE_RUN.join(re.escape(w) for w in words))

    def may_match(self, frag: Fragment, i: int, exact_case: bool) -> bool:
        """Whether passage ``i`` of a fragment may hold the (ASCII) query: the exact bytes,
        or (folded) the folded query in its folded text, kept by the fragment."""
        start, end = frag.offsets[i], frag.offsets[i + 1]
        if frag.text.find(self.exact, start, end) >= 0:
            return True
        return not exact_case and self.folded_text in frag.folded(i)

    def folded_at(self, low: bytes, start: int, end: int) -> int:
        if self.spaced is None:
            return low.find(self.folded, start, end)
        m = self.spaced.search(low, start, end)
        return -1 if m is None else m.start()

    def starts_at(self, searched: bytes, start: int, end: int, exact_case: bool) -> int:
        """Where the first match in ``searched[start:end]`` starts (-1: none): of the exact
        bytes in the text with ``exact_case``, else of the folded query in the lowered text.
        Every exact match is a folded match at the same place."""
        if exact_case:
            return searched.find(self.exact, start, end)
        return self.folded_at(searched, start, end)


def every_hit(
    fragments: Iterable[tuple[Fragment, list[int]]],
    query: BytesQuery,
    *,
    exact_case: bool,
    score: float,
    fallback: Fallback,
) -> list[Hit]:
    """Hits among the candidates of each (fragment, positions) pair: exact-case matches
    score ``1.25 * score``, folded ones ``score`` (none with ``exact_case``)."""
    collecting = gc.isenabled()
    gc.disable()  # tens of thousands of new hits, none of them in a cycle: no collections
    try:
        return _every_hit(fragments, query, exact_case, score, fallback)
    finally:
        if collecting:
            gc.enable()


def _every_hit(
    fragments: Iterable[tuple[Fragment, list[int]]],
    query: BytesQuery,
    exact_case: bool,
    score: float,
    fallback: Fallback,
) -> list[Hit]:
    hits: list[Hit] = []
    exact_score, folded_score = round(score + 0.25 * score, 4), round(score, 4)
    for frag, run in fragments:
        if not query.usable:
            hits += fallback(list(from_fragments_of(frag, run)))
            continue
        text, low, offsets, odd = frag.text, frag.lower, frag.offsets, frag.odd
        general = []
        for i in run:
            if i in odd:
                if query.may_match(frag, i, exact_case):
                    general.append(i)
                continue
            start, end = offsets[i], offsets[i + 1]
            at = text.find(query.exact, start, end)
            if at >= 0:
                hits.append(_hit(frag, i, text, start, end, at, exact_score))
            elif not exact_case and (at := query.folded_at(low, start, end)) >= 0:
                hits.append(_hit(frag, i, text, start, end, at, folded_score))
        if general:
            hits += fallback(list(from_fragments_of(frag, general)))
    return hits


def top_hits(
    fragments: Iterable[tuple[Fragment, list[int]]],
    query: BytesQuery,
    k: int,
    *,
    extra: int,
    exact_case: bool,
    score: float,
    check: Callable[[Loaded], tuple[Hit, bool] | None],
) -> list[Hit]:
    """Top-k verification of candidates in order: stops at ``k`` exact-case hits, or once
    ``extra`` more candidates were checked after ``k`` hits; returns the best ``k`` (by
    score, source, line), building a hit only for those. ``check`` verifies a passage that
    is not plain (or any, for a query that is not ASCII).

    Once a plain candidate held nothing, the next ones are skipped by searching ahead in the
    fragment's text: a candidate in which no (folded, or with ``exact_case`` exact) match of
    the query *starts* holds none, and the next match is searched from there on, so
    candidates that hold nothing (common trigrams, a phrase found nowhere) cost a comparison
    each, not a search each."""
    found: list[tuple[float, str, int, int, Any]] = []  # sort key, then what makes the hit
    exact_hits = checked_after = 0
    exact_score, folded_score = round(score + 0.25 * score, 4), round(score, 4)
    skipping = False  # from the first plain candidate that holds nothing on
    for frag, run in fragments:
        text, offsets = frag.text, frag.offsets
        odd = frag.odd if query.usable else None
        span_end = offsets[run[-1] + 1] if run else 0
        # search ahead unless that means lowering a fragment's text for one candidate (what a
        # search's first call would pay)
        ahead = exact_case or len(run) > 1 or frag.lower_made
        next_at = -1  # where the next match starts, searched from a candidate's start
        for i in run:
            if exact_hits >= k or (len(found) >= k and checked_after > extra):
                return _best(found, k)
            checked_after += len(found) >= k
            if odd is None or i in odd:
                if odd is not None and not query.may_match(frag, i, exact_case):
                    continue
                made = check(next(from_fragments_of(frag, [i])))
                if made is not None:
                    hit = made[0]
                    found.append((-hit.score, hit.source, hit.line_start, len(found), hit))
                    exact_hits += made[1]
                continue
            start, end = offsets[i], offsets[i + 1]
            if skipping and ahead:
                if next_at < start:
                    searched = text if exact_case else frag.lower
                    next_at = query.starts_at(searched, start, span_end, exact_case)
                    if next_at < 0:
                        next_at = span_end  # none up to the last candidate's end
                if next_at >= end:
                    continue  # no match starts in this passage
                start = next_at  # (none starts before it)
            at = text.find(query.exact, start, end)
            if at >= 0:
                exact_hits += 1
                hit_score = exact_score
            elif not exact_case and (at := query.folded_at(frag.lower, start, end)) >= 0:
                hit_score = folded_score
            else:
                skipping = True  # candidates that hold nothing: skip them by searching ahead
                continue
            start = offsets[i]
            line = frag.spans[i][0] + text.count(b"\n", start, at)
            made_later = (frag, i, start, end, at, hit_score, line)
            name = frag.head["sources"][frag.source_ix[i]]
            found.append((-hit_score, name, line, len(found), made_later))
    return _best(found, k)


def _best(found: list[tuple[float, str, int, int, Any]], k: int) -> list[Hit]:
    found.sort()
    out = []
    for entry in found[:k]:
        made = entry[4]
        if made.__class__ is Hit:
            out.append(made)
        else:
            frag, i, start, end, at, score, line = made
            out.append(_hit(frag, i, frag.text, start, end, at, score, line))
    return out


def _hit(
    frag: Fragment,
    i: int,
    text: bytes,
    start: int,
    end: int,
    at: int,
    score: float,
    line_start: int | None = None,
    phrase: bool = True,
) -> Hit:
    """:func:`engram_sdk.memory.verify.make_hit` for byte offset ``at`` of a plain passage
    (``line_start``: its line, when known)."""
    first = text.rfind(b"\n", start, at)
    first = start if first < 0 else first + 1
    last = text.find(b"\n", at, end)
    head = frag.head
    if line_start is None:
        line_start = frag.spans[i][0] + text.count(b"\n", start, at)
    metadata = head["metadata"]
    return trusted_hit(
        {
            "source": head["sources"][frag.source_ix[i]],
            "line_start": line_start,
            "line_end": line_start,
            "score": score,
            "snippet": text[first : end if last < 0 else last].decode("ascii").strip()[:200],
            "passage_id": frag.pids[i],
            "phrase_match": phrase,
            "scope": head["scope"],
            "metadata": dict(metadata) if metadata else {},
        }
    )


def plain_hit(frag: Fragment, i: int, at: int, score: float, *, phrase: bool) -> Hit:
    """The hit at byte offset ``at`` of plain passage ``i`` of a fragment (``score`` as
    given, rounded to 4 places as every hit's)."""
    text, offsets = frag.text, frag.offsets
    return _hit(frag, i, text, offsets[i], offsets[i + 1], at, round(score, 4), None, phrase)
