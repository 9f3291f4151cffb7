"""A hot-row DRAM cache in front of a file backend (N-gram access is Zipf-like)."""

from __future__ import annotations

import threading

import numpy as np
from engram_sdk.stores.base import Store
from engram_sdk.stores.models import TableSpec
from engram_sdk.stores.pending import Pending
from engram_sdk.stores.wrapping import WrappingStore


class CachedStore(WrappingStore):
    """A :class:`Store` in front of another; ``gather`` serves cached rows from DRAM.

    The cache is per table, holds up to ``capacity`` rows and evicts with CLOCK (second
    chance). Transactions are staged here and committed to the wrapped store in one
    commit, which drops the written rows from the cache. Thread-safe: gathers and commits
    of one table take turns (fetch threads may gather a table while the next step's
    prefetch of it is still running); different tables proceed in parallel. Closing it
    closes the wrapped store.
    """

    def __init__(self, store: Store, capacity: int) -> None:
        super().__init__(store, store.mode)
        self.capacity = int(capacity)
        self.hits = 0
        self.misses = 0
        self._caches: dict[str, _Clock] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CachedStore({self.store!r}, capacity={self.capacity})"

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

    # ---- primitives: the wrapped store's, with the cache in front of row reads ------------
    def _specs(self) -> dict[str, TableSpec]:
        return self.store.tables()

    def _read_rows(self, spec: TableSpec, row_ids: np.ndarray, out: np.ndarray) -> None:
        with self._lock(spec.name):
            cache = self._caches.get(spec.name)
            if cache is None or cache.spec != spec:
                cache = _Clock(min(self.capacity, max(spec.rows, 1)), spec)
                self._caches[spec.name] = cache
            slots = cache.lookup(row_ids)
            hit = slots >= 0
            out[hit] = cache.rows[slots[hit]]
            if not hit.all():
                uniq, inv = np.unique(row_ids[~hit], return_inverse=True)
                fetched = self.store.gather(spec.name, uniq)
                out[~hit] = fetched[inv]
                cache.insert(uniq, fetched)
        with self._locks_lock:
            self.hits += int(hit.sum())
            self.misses += int((~hit).sum())

    def _commit(self, pending: Pending) -> None:
        tables = sorted(set(pending.rows) | set(pending.new_tables))
        locks = [self._lock(t) for t in tables]
        for lock in locks:
            lock.acquire()
        try:
            self.store._check_writable()
            with self.store._write_lock:
                self.store._commit_checked(pending)
        finally:
            for name in tables:
                cache = self._caches.get(name)
                final = pending.final_rows(name)
                if cache is not None and final is not None:
                    cache.invalidate(final[0])
                if name in pending.new_tables:
                    self._caches.pop(name, None)
            for lock in reversed(locks):
                lock.release()

    def _close(self) -> None:
        self._caches.clear()
        super()._close()


class _Clock:
    """CLOCK (second-chance) eviction, vectorised per batch of inserts."""

    def __init__(self, capacity: int, spec: TableSpec) -> None:
        self.spec = spec
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
