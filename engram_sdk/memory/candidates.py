"""Candidate passages from the trigram index: complete by construction, verified later.

A passage whose folded text contains the folded query contains every trigram of it, so the
intersection of those posting lists (or of any subset of them) misses nothing. Queries of
one or two bytes read a range of the dictionary instead: every trigram starting with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engram_sdk.memory.index import Dictionary, TrigramIndex, member
from engram_sdk.memory.list_cache import ListKey
from engram_sdk.memory.trigrams import sorted_unique

WINDOW_IDS = 64  # top-k: ids of the rarest list in the first window of a segment
WINDOW_GROWTH = 4  # each further window reads this many times more
WINDOW_DF_RATIO = 64  # windows read the lists at most this many times commoner than the rarest
WINDOW_LISTS = 8  # and at most this many of them
WHOLE_LIST = 512  # a rarest list this short is one window: one filtering pass, not several


def all_of(index: TrigramIndex, sid: int, trigrams: np.ndarray) -> np.ndarray:
    """Sorted ids of live passages holding every trigram: per segment, the rarest list
    filtered by each of the others, rarest first (lists from the index's list cache)."""
    found = []
    for s in index.table(sid).segments:
        entries = index.entries(sid, s.seg, trigrams)
        if entries is None:
            continue
        ids, *others = index.decoded(sid, s.seg, entries)
        for other in others:
            ids = ids[member(ids, other)]
            if not len(ids):
                break
        found.append(ids)
    return _live(index, sid, found)


def windows(
    index: TrigramIndex, sid: int, trigrams: np.ndarray, *, first: int | None = None
) -> Iterator[np.ndarray]:
    """Candidates for top-k, window after window: sorted live ids, ascending within each
    segment, oldest segment first; all windows together hold every live passage with every
    trigram (a superset: verification decides).

    A window of a segment takes the next ``first`` ids of its rarest list (the whole list
    when it is at most :data:`WHOLE_LIST` long; then :data:`WINDOW_GROWTH` times more each
    time) and keeps those that the next rarest lists
    (up to :data:`WINDOW_LISTS`, at most :data:`WINDOW_DF_RATIO` times as common) also hold.
    Lists come whole from the index's list cache.
    """
    dead = None
    for keys in plan(index, sid, trigrams).window_keys:
        rarest, *others = index.decoded_keys(keys)
        start, size = 0, first or (len(rarest) if len(rarest) <= WHOLE_LIST else WINDOW_IDS)
        while start < len(rarest):
            ids = rarest[start : start + size]
            for other in others:
                ids = ids[member(ids, other)]
                if not len(ids):
                    break
            if dead is None:
                dead = index.tombstones(sid)
            yield ids[~member(ids, dead)] if len(dead) and len(ids) else ids
            start, size = start + size, size * WINDOW_GROWTH


def first_candidates(index: TrigramIndex, sid: int, trigrams: np.ndarray, want: int) -> np.ndarray:
    """The first :func:`windows` of a query, until they hold ``want`` ids (or all of them)."""
    found, count = [], 0
    for ids in windows(index, sid, trigrams):
        found.append(ids)
        count += len(ids)
        if count >= want:
            break
    return np.concatenate(found) if found else np.zeros(0, np.uint32)


def _window_lists(d: Dictionary, entries: np.ndarray) -> np.ndarray:
    """The entries (rarest first) a window reads: the rarest and those not much commoner."""
    dfs = d.df[entries]
    return entries[dfs <= WINDOW_DF_RATIO * int(dfs[0])][:WINDOW_LISTS]


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
    return plan(index, sid, trigrams).df


@dataclass(frozen=True)
class Plan:
    """What a top-k read of a trigram set needs from the segment dictionaries, looked up
    once per set and segment table: per segment holding every trigram, the list-cache keys
    of the lists a window reads (rarest first), and the :func:`document_frequency` bound."""

    window_keys: tuple[list[ListKey], ...]
    df: int


def plan(index: TrigramIndex, sid: int, trigrams: np.ndarray) -> Plan:
    """The :class:`Plan` of ``trigrams`` over the scope's current segments (remembered with
    the index's dictionary lookups, for the scope's generation: a refresh that finds the
    segment table changed starts a new one)."""
    key = ("plan", sid, index.generation(sid), trigrams.tobytes())
    return index.remembered(key, (index.table(sid).segments, trigrams), _plan)


def _plan(index: TrigramIndex, key: tuple, value: tuple) -> Plan:
    segments, trigrams = value
    sid = key[1]
    window_keys, df = [], 0
    for s in segments:
        entries = index.entries(sid, s.seg, trigrams)
        if entries is None:
            continue
        d = index.dictionary(sid, s.seg)
        df += int(d.df[entries[0]])
        window_keys.append([(sid, s.seg, e) for e in _window_lists(d, entries).tolist()])
    return Plan(tuple(window_keys), df)


def _live(index: TrigramIndex, sid: int, found: list[np.ndarray]) -> np.ndarray:
    if len(found) == 1:
        ids = found[0]
    else:
        ids = np.sort(np.concatenate(found)) if found else np.zeros(0, np.uint32)
    dead = index.tombstones(sid)
    return ids[~member(ids, dead)] if len(dead) else ids
