"""Bounded index maintenance: segments capped in size, tombstones purged one segment at a
time.

Deleted passages are tombstoned and filtered at query time; their postings must go some
time. Merging every segment at once (``compact``) rewrites the whole index in one commit, a
spike of seconds per 100 MB. Instead, a segment holds at most :data:`SEGMENT_CAP` postings
(a bigger batch or merge is cut by passage id, so segments keep covering ascending id
ranges), and after a delete the one segment whose id range is most tombstoned, once at
least :data:`PURGE_SHARE` of its passages, is rewritten without them and its tombstones dropped: one
commit rewrites at most one capped segment.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

SEGMENT_CAP = 8 << 20  # postings per segment (about 8 MB of coded lists)
PURGE_SHARE = 0.2  # a segment is purged once this share of its passages is tombstoned
PURGE_MIN = 64  # and at least this many of its passages
_LOW32 = np.uint64(0xFFFFFFFF)


def pid_range(keys: np.ndarray) -> tuple[int, int]:
    """Lowest and highest passage id of ``trigram << 32 | pid`` keys."""
    pids = keys & _LOW32
    return int(pids.min()), int(pids.max())


def split_by_pid(keys: np.ndarray, cap: int | None = None) -> list[tuple[np.ndarray, int]]:
    """``keys`` (sorted) cut into runs of ascending, disjoint passage-id ranges of at most
    about ``cap`` keys each (a passage's keys stay together), each with its number of
    passages; each run stays sorted (``cap``: :data:`SEGMENT_CAP`)."""
    cap = cap or SEGMENT_CAP
    pids = (keys & _LOW32).astype(np.int64)
    lo = int(pids.min())
    per_pid = np.bincount(pids - lo)
    if len(keys) <= cap:
        return [(keys, int(np.count_nonzero(per_pid)))]
    cum = np.cumsum(per_pid)
    bounds = np.searchsorted(cum, np.arange(cap, int(cum[-1]), cap), side="right")
    edges = [0, *(int(b) for b in np.unique(bounds)), len(per_pid)]
    out = []
    for a, b in itertools.pairwise(edges):
        part = keys[(pids >= lo + a) & (pids < lo + b)]
        if len(part):
            out.append((part, int(np.count_nonzero(per_pid[a:b]))))
    return out


class KeyRun(NamedTuple):
    """The keys of passages ``first .. first + passages - 1``: sorted unique
    ``trigram << 32 | (pid - first)`` (uint64), ids relative to ``first``."""

    keys: np.ndarray
    first: int
    passages: int


def segments_of_runs(
    runs: Sequence[KeyRun], cap: int | None = None
) -> Iterator[tuple[np.ndarray, int, tuple[int, int] | None]]:
    """Segments of consecutive ``runs`` (ascending, disjoint id ranges), each with its
    number of passages and id range (None: read it from the keys): runs are grouped up to
    about ``cap`` keys (:data:`SEGMENT_CAP`) and each group merged into one sorted array,
    so a batch is never sorted whole and then cut again; a run above the cap alone is cut by
    :func:`split_by_pid`."""
    cap = cap or SEGMENT_CAP
    group: list[KeyRun] = []
    size = 0
    for run in runs:
        if group and size + len(run.keys) > cap:
            yield from _merged(group, cap)
            group, size = [], 0
        if run.passages:
            group.append(run)
            size += len(run.keys)
    if group:
        yield from _merged(group, cap)


def _merged(
    group: list[KeyRun], cap: int
) -> Iterator[tuple[np.ndarray, int, tuple[int, int] | None]]:
    keys = np.empty(sum(len(r.keys) for r in group), np.uint64)
    at = 0
    for r in group:  # absolute ids, written once into the merged array
        np.add(r.keys, np.uint64(r.first), out=keys[at : at + len(r.keys)])
        at += len(r.keys)
    if len(group) > 1:
        keys.sort(kind="stable")  # sorted runs: a linear merge
    if len(keys) > cap:
        for part, n in split_by_pid(keys, cap):
            yield part, n, None
    elif len(keys):
        last = group[-1]
        span = (group[0].first, last.first + last.passages - 1)
        yield keys, sum(r.passages for r in group), span


def drop_dead(keys: np.ndarray, dead: np.ndarray) -> np.ndarray:
    """``keys`` without those of passages in ``dead`` (sorted ids), by a lookup table."""
    if not len(dead) or not len(keys):
        return keys
    pids = keys & _LOW32
    top = int(dead[-1])
    table = np.zeros(top + 2, bool)
    table[dead] = True
    return keys[~table[np.minimum(pids, top + 1).astype(np.int64)]]


def segment_to_purge(ranges: Sequence[tuple[int, int, int]], dead: np.ndarray) -> int | None:
    """Which segment (by position; ``ranges``: each one's lowest and highest passage id and
    number of passages) a delete should rewrite: the most tombstoned share, if enough."""
    best, best_share = None, 0.0
    for n, (lo, hi, passages) in enumerate(ranges):
        a, b = np.searchsorted(dead, [lo, hi + 1])
        count = int(b - a)
        share = count / max(1, passages)
        if count >= PURGE_MIN and share >= PURGE_SHARE and share > best_share:
            best, best_share = n, share
    return best
