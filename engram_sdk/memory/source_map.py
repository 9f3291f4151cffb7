"""Which source each passage id belongs to, per scope, for listing matching sources.

Built from the scope's source records (their passage ids) and kept while the scope does not
change (:meth:`engram_sdk.memory.index.TrigramIndex.generation`), so listing every file
that holds a query (``search(..., one_per_source=True)``) loads one matching passage per
file instead of every candidate.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engram_sdk.memory.index import TrigramIndex, member
from engram_sdk.memory.memory import SOURCES
from engram_sdk.memory.models import Hit
from engram_sdk.memory.trigrams import sorted_unique
from engram_sdk.memory.verify import Loaded, Loader, batches
from engram_sdk.stores import Store

BUILD_RATIO = 16  # a map costs about 1/16 of a passage read per passage of the scope

_maps: weakref.WeakKeyDictionary[TrigramIndex, dict[int, tuple[int, SourceMap]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class SourceMap:
    """Passage ids (sorted) and the index of each one's source in ``names``."""

    pids: np.ndarray  # uint32, sorted
    source: np.ndarray  # int64, parallel to pids
    names: list[str]

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Source index of each id; -1 for ids the map does not hold."""
        if not len(self.pids):
            return np.full(len(ids), -1, np.int64)
        at = np.minimum(np.searchsorted(self.pids, ids), len(self.pids) - 1)
        return np.where(self.pids[at] == ids, self.source[at], -1)


def source_map(
    store: Store, index: TrigramIndex, sid: int, *, worth: int | None = None
) -> SourceMap | None:
    """The scope's map as of the index's last refresh (rebuilt when the scope changed).
    With ``worth`` (candidates it would save reading), None instead of a rebuild that would
    cost more than reading them: a build reads every source record of the scope."""
    generation = index.generation(sid)
    per_scope = _maps.setdefault(index, {})
    cached = per_scope.get(sid)
    if cached is not None and cached[0] == generation:
        return cached[1]
    if worth is not None and worth * BUILD_RATIO < index.table(sid).passages:
        return None
    found = _build(store, sid)
    per_scope[sid] = (generation, found)
    return found


def _build(store: Store, sid: int) -> SourceMap:
    names: list[str] = []
    pid_parts: list[list[int]] = []
    for _, raw in store.scan(SOURCES, sid.to_bytes(4, "big")):
        record = json.loads(raw)
        names.append(record["source"])
        pid_parts.append(record.get("pids") or [])
    counts = [len(p) for p in pid_parts]
    pids = np.fromiter((p for part in pid_parts for p in part), np.uint32, sum(counts))
    source = np.repeat(np.arange(len(names), dtype=np.int64), counts)
    order = np.argsort(pids, kind="stable")
    return SourceMap(pids[order], source[order], names)


def verify_per_source(
    store: Store,
    index: TrigramIndex,
    sid: int,
    ids: np.ndarray,
    check: Callable[[Loaded], Hit | None],
    loader: Loader,
    allowed: Callable[[str], bool] | None = None,
) -> list[Hit]:
    """The first passage of each source among candidates ``ids`` (sorted) that ``check``
    turns into a hit. Round after round, each source not yet hit has its next candidate
    loaded and checked; sources are known from the map before any passage is read, so a
    file with many matching passages costs one read. Ids the map lacks (or all of them, when
    a map would cost more than it saves) are read as they come, and the hits are reduced to
    one per source at the end. ``allowed`` (source filters) drops excluded sources first."""
    found = source_map(store, index, sid, worth=len(ids))
    src = found.lookup(ids) if found is not None else np.full(len(ids), -1, np.int64)
    if found is not None and allowed is not None:  # drop the sources the filters exclude
        ok = np.array([allowed(name) for name in found.names] + [True], bool)
        keep = ok[src]  # -1 (unknown) reads the last entry: kept, the check decides
        ids, src = ids[keep], src[keep]
    hits: list[Hit] = []
    while len(ids):
        take = _first_of_each(src)
        source_of = dict(zip(ids[take].tolist(), src[take].tolist(), strict=True))
        hit_sources = []
        for p in batches(loader, ids[take], every=True):
            hit = check(p)
            if hit is not None:
                hits.append(hit)
                hit_sources.append(source_of[p.pid])
        ids, src = ids[~take], src[~take]
        if hit_sources and len(ids):
            keep = ~member(src, sorted_unique(np.array(hit_sources, np.int64)))
            ids, src = ids[keep], src[keep]
    return first_per_source(hits)


def _first_of_each(src: np.ndarray) -> np.ndarray:
    """Mask of the first position of each source (and of every unknown, -1)."""
    order = np.argsort(src, kind="stable")
    ordered = src[order]
    first = np.ones(len(ordered), bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    take = np.zeros(len(src), bool)
    take[order[first]] = True
    take[src < 0] = True
    return take


def first_per_source(hits: list[Hit]) -> list[Hit]:
    """One hit per source: a phrase match before a partial one, then the lowest passage id."""
    best: dict[str, Hit] = {}
    for h in hits:
        rank = (not h.phrase_match, h.passage_id)
        old = best.get(h.source)
        if old is None or rank < (not old.phrase_match, old.passage_id):
            best[h.source] = h
    return list(best.values())
