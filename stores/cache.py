"""A hot-row DRAM cache in front of a file backend (N-gram access is Zipf-like)."""

from __future__ import annotations

from typing import Any

import numpy as np
from engram_sdk.stores import validate
from engram_sdk.stores.base import Store


class CachedStore:
    """Wraps a store; ``gather`` serves cached rows from DRAM and fetches the rest.

    The cache is per table, holds up to ``capacity`` rows and evicts with CLOCK (second
    chance). Writes go through to the store and refresh cached rows. Everything else is
    delegated unchanged.
    """

    def __init__(self, store: Store, capacity: int) -> None:
        self.store = store
        self.capacity = int(capacity)
        self.hits = 0
        self.misses = 0
        self._caches: dict[str, _Clock] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def __enter__(self) -> CachedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()

    @property
    def hit_rate(self) -> float:
        """Hits over requested rows since creation (or the last ``reset_stats``)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def reset_stats(self) -> None:
        """Zero the hit/miss counters."""
        self.hits = self.misses = 0

    def gather(self, table: str, row_ids: Any, out: Any = None) -> Any:
        """Rows of ``table``; cached rows are copied from DRAM, the rest read once and cached."""
        spec = self.store.table(table)
        ids = validate.check_row_ids(spec, row_ids)
        view = (np.empty((len(ids), spec.dim), spec.storage_dtype) if out is None
                else validate.output_view(spec, out, len(ids)))
        if self.store._pending is not None:
            return self.store.gather(table, ids, out)
        cache = self._caches.get(table)
        if cache is None:
            cache = self._caches[table] = _Clock(min(self.capacity, max(spec.rows, 1)), spec)
        slots = cache.lookup(ids)
        hit = slots >= 0
        self.hits += int(hit.sum())
        self.misses += int((~hit).sum())
        view[hit] = cache.rows[slots[hit]]
        if not hit.all():
            missing_ids = ids[~hit]
            uniq, inv = np.unique(missing_ids, return_inverse=True)
            fetched = self.store.gather(table, uniq)
            view[~hit] = fetched[inv]
            cache.insert(uniq, fetched)
        return view if out is None else out

    def scatter(self, table: str, row_ids: Any, values: Any) -> None:
        """Write through and drop the written rows from the cache."""
        self.store.scatter(table, row_ids, values)
        cache = self._caches.get(table)
        if cache is not None:
            cache.invalidate(validate.check_row_ids(self.store.table(table), row_ids))


class _Clock:
    def __init__(self, capacity: int, spec: Any) -> None:
        self.rows = np.zeros((capacity, spec.dim), spec.storage_dtype)
        self.ids = np.full(capacity, -1, dtype=np.int64)
        self.ref = np.zeros(capacity, dtype=bool)
        self.slot_of: dict[int, int] = {}
        self.hand = 0

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        get = self.slot_of.get
        slots = np.fromiter((get(i, -1) for i in ids.tolist()), dtype=np.int64, count=len(ids))
        self.ref[slots[slots >= 0]] = True
        return slots

    def insert(self, ids: np.ndarray, rows: np.ndarray) -> None:
        cap = len(self.ids)
        for i, row in zip(ids.tolist()[:cap], rows[:cap], strict=False):
            while self.ref[self.hand]:
                self.ref[self.hand] = False
                self.hand = (self.hand + 1) % cap
            old = int(self.ids[self.hand])
            if old >= 0:
                del self.slot_of[old]
            self.ids[self.hand] = i
            self.rows[self.hand] = row
            self.slot_of[i] = self.hand
            self.hand = (self.hand + 1) % cap

    def invalidate(self, ids: np.ndarray) -> None:
        for i in ids.tolist():
            slot = self.slot_of.pop(i, None)
            if slot is not None:
                self.ids[slot] = -1
                self.ref[slot] = False
