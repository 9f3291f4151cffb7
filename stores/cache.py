"""A hot-row DRAM cache in front of a file backend (N-gram access is Zipf-like)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from engram_sdk.stores import validate
from engram_sdk.stores.base import Store


class CachedStore:
    """Wraps a store; ``gather`` serves cached rows from DRAM and fetches the rest.

    The cache is per table, holds up to ``capacity`` rows and evicts with CLOCK (second
    chance). Writes go through to the store and refresh cached rows. Everything else is
    delegated unchanged. Thread-safe: gathers and writes of one table take turns (fetch
    threads may gather a table while the next step's prefetch of it is still running);
    different tables proceed in parallel.
    """

    def __init__(self, store: Store, capacity: int) -> None:
        self.store = store
        self.capacity = int(capacity)
        self.hits = 0
        self.misses = 0
        self._caches: dict[str, _Clock] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

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

    def _lock(self, table: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(table, threading.Lock())

    def gather(self, table: str, row_ids: Any, out: Any = None) -> Any:
        """Rows of ``table``; cached rows are copied from DRAM, the rest read once and cached."""
        spec = self.store.table(table)
        ids = validate.check_row_ids(spec, row_ids)
        view = (
            np.empty((len(ids), spec.dim), spec.storage_dtype)
            if out is None
            else validate.output_view(spec, out, len(ids))
        )
        if self.store._pending is not None:
            return self.store.gather(table, ids, out)
        with self._lock(table):
            cache = self._caches.get(table)
            if cache is None:
                cache = self._caches[table] = _Clock(min(self.capacity, max(spec.rows, 1)), spec)
            slots = cache.lookup(ids)
            hit = slots >= 0
            view[hit] = cache.rows[slots[hit]]
            if not hit.all():
                missing_ids = ids[~hit]
                uniq, inv = np.unique(missing_ids, return_inverse=True)
                fetched = self.store.gather(table, uniq)
                view[~hit] = fetched[inv]
                cache.insert(uniq, fetched)
        with self._locks_lock:
            self.hits += int(hit.sum())
            self.misses += int((~hit).sum())
        return view if out is None else out

    def scatter(self, table: str, row_ids: Any, values: Any) -> None:
        """Write through and drop the written rows from the cache."""
        with self._lock(table):
            self.store.scatter(table, row_ids, values)
            cache = self._caches.get(table)
            if cache is not None:
                cache.invalidate(validate.check_row_ids(self.store.table(table), row_ids))


class _Clock:
    """CLOCK (second-chance) eviction, vectorised per batch of inserts."""

    def __init__(self, capacity: int, spec: Any) -> None:
        self.rows = np.zeros((capacity, spec.dim), spec.storage_dtype)
        self.ids = np.full(capacity, -1, dtype=np.int64)
        self.ref = np.zeros(capacity, dtype=bool)
        self.slot_of = np.full(spec.rows, -1, dtype=np.int64)
        self.hand = 0

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        slots = self.slot_of[ids]
        self.ref[slots[slots >= 0]] = True
        return slots

    def insert(self, ids: np.ndarray, rows: np.ndarray) -> None:
        cap = len(self.ids)
        ids, rows = ids[:cap], rows[:cap]
        k = len(ids)
        if not k:
            return
        order = np.roll(np.arange(cap), -self.hand)
        candidates = np.flatnonzero(~self.ref[order])
        if len(candidates) >= k:
            last = int(candidates[k - 1])
            victims = order[candidates[:k]]
            self.ref[order[:last]] = False  # the hand passed them: second chance used
        else:  # a full sweep cleared every bit: the hand goes round again
            taken = np.flatnonzero(self.ref[order])[: k - len(candidates)]
            last = int(taken[-1])
            victims = order[np.concatenate([candidates, taken])]
            self.ref[:] = False
        self.hand = int(order[last] + 1) % cap
        old = self.ids[victims]
        self.slot_of[old[old >= 0]] = -1
        self.ids[victims] = ids
        self.rows[victims] = rows
        self.slot_of[ids] = victims

    def invalidate(self, ids: np.ndarray) -> None:
        slots = self.slot_of[ids]
        slots = slots[slots >= 0]
        self.ids[slots] = -1
        self.ref[slots] = False
        self.slot_of[ids] = -1
