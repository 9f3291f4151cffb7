"""Candidate passages from the trigram index: complete by construction, verified later.

A passage whose folded text contains the folded query contains every trigram of it, so the
intersection of those posting lists (or of any subset of them) misses nothing. Queries of
one or two bytes read a range of the dictionary instead: every trigram starting with them.
"""

from __future__ import annotations

import numpy as np

from engram_sdk.memory.index import TrigramIndex, member
from engram_sdk.memory.trigrams import sorted_unique

FIRST_ROUND = 3  # rarest lists read before deciding whether the others are worth reading


def all_of(
    index: TrigramIndex, sid: int, trigrams: np.ndarray, *, enough: int | None = None
) -> np.ndarray:
    """Sorted ids of live passages holding every trigram.

    With ``enough``, the rarest :data:`FIRST_ROUND` lists are read first and the others only
    if more than ``enough`` candidates remain: a superset either way, cheaper to read.
    """
    plans = []
    for s in index.table(sid).segments:
        d = index.dictionary(sid, s.seg)
        if not len(d.trigrams):
            continue
        at = np.minimum(np.searchsorted(d.trigrams, trigrams), len(d.trigrams) - 1)
        if not (d.trigrams[at] == trigrams).all():
            continue  # some trigram is absent from this segment: no passage of it matches
        plans.append((s.seg, at[np.argsort(d.df[at], kind="stable")]))
    first = FIRST_ROUND if enough is not None else None
    found = _intersect(index, sid, [(seg, order[:first]) for seg, order in plans])
    if enough is not None and sum(len(f) for f in found) > enough:
        rest = [(seg, order[first:]) for seg, order in plans]
        more = _intersect(index, sid, rest, found)
        found = more
    return _live(index, sid, found)


def all_of_prefix(
    index: TrigramIndex,
    sid: int,
    trigrams: np.ndarray,
    *,
    prefix_bytes: int,
    lists: int | None = None,
) -> tuple[np.ndarray, bool]:
    """Candidates from list prefixes (each list read up to ``prefix_bytes``), for top-k.

    Per segment, the rarest list gives the candidates; every other list removes those below
    the last id it was read to and not in it. If no rarest list was cut, the result holds
    every match (complete: True); else it holds every match up to the rarest list's cut.
    With ``lists``, only that many of the rarest lists are read (a superset, cheaper to get).
    """
    plans = []
    for s in index.table(sid).segments:
        d = index.dictionary(sid, s.seg)
        if not len(d.trigrams):
            continue
        at = np.minimum(np.searchsorted(d.trigrams, trigrams), len(d.trigrams) - 1)
        if (d.trigrams[at] == trigrams).all():
            plans.append((s.seg, at[np.argsort(d.df[at], kind="stable")][:lists]))
    found, complete = [], True
    for lists, cut in index.read_lists(sid, plans, prefix_bytes=prefix_bytes):
        ids = lists[0]
        complete &= not cut[0]
        for other, other_cut in zip(lists[1:], cut[1:], strict=True):
            keep = member(ids, other)
            if other_cut and len(other):
                keep |= ids > other[-1]
            ids = ids[keep]
        found.append(ids)
    return _live(index, sid, found), complete


def _intersect(
    index: TrigramIndex,
    sid: int,
    plans: list[tuple[int, np.ndarray]],
    start: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Per segment, the ids in every listed entry (and in ``start``'s ids when given)."""
    out = []
    lists_per_seg = index.read_lists(sid, [(seg, e) for seg, e in plans if len(e)])
    it = iter(lists_per_seg)
    for n, (_seg, entries) in enumerate(plans):
        lists = next(it)[0] if len(entries) else []
        ids = start[n] if start is not None else lists[0]
        for other in lists if start is not None else lists[1:]:
            ids = ids[member(ids, other)]
        out.append(ids)
    return out


def any_starting(
    index: TrigramIndex, sid: int, lo: int, hi: int, *, enough: int | None = None
) -> np.ndarray:
    """Sorted ids of live passages holding a trigram in ``[lo, hi]``; with ``enough``, only the
    largest lists are read until they hold that many ids (a subset, for top-k)."""
    wanted = []
    budget = enough
    for s in index.table(sid).segments:
        d = index.dictionary(sid, s.seg)
        first, last = np.searchsorted(d.trigrams, [lo, hi + 1])
        entries = np.arange(first, last)
        if budget is not None:
            entries = entries[np.argsort(-d.df[entries].astype(np.int64), kind="stable")]
            take = int(np.searchsorted(np.cumsum(d.df[entries]), budget)) + 1
            entries = entries[:take]
            budget = max(0, budget - int(d.df[entries].sum()))
        if len(entries):
            wanted.append((s.seg, np.sort(entries)))
        if budget == 0:
            break
    found = [sorted_unique(np.concatenate(lists)) for lists, _ in index.read_lists(sid, wanted)]
    return _live(index, sid, found)


def document_frequency(index: TrigramIndex, sid: int, trigrams: np.ndarray) -> int:
    """An upper bound on the passages holding every trigram: the smallest list, summed over
    segments (0 if some trigram is nowhere)."""
    total = 0
    for s in index.table(sid).segments:
        d = index.dictionary(sid, s.seg)
        if not len(d.trigrams):
            continue
        at = np.minimum(np.searchsorted(d.trigrams, trigrams), len(d.trigrams) - 1)
        if (d.trigrams[at] == trigrams).all():
            total += int(d.df[at].min()) if len(at) else 0
    return total


def _live(index: TrigramIndex, sid: int, found: list[np.ndarray]) -> np.ndarray:
    ids = np.concatenate(found) if found else np.zeros(0, np.uint32)
    if len(found) > 1:
        ids = np.sort(ids)
    dead = index.tombstones(sid)
    return ids[~member(ids, dead)] if len(dead) else ids
