"""A device-side cache of the hottest Engram rows, admitted by frequency.

N-grams of real text are Zipf-distributed: a few thousand rows (``def``, ``self.``, ``the``)
take a large share of every batch. :class:`HotRowCache` keeps up to ``capacity`` rows on the
compute device (a GPU) so that a fetch reads only the rows it does not hold from the store.

Policy (TinyLFU-like, batched): every requested id is counted in a count-min sketch whose
counters halve every ``age_every`` counted requests, so the frequencies follow the recent
text. After a fetch, the rows that missed are offered: free slots take the most frequent
ones; once full, a candidate replaces the least frequent cached row (of all rows, or of a
random sample of them in caches over 65536 rows) only if its estimated frequency is higher,
so a burst of one-off N-grams never flushes the hot set.

Exactness: cached rows are byte copies of the rows the store returned, so ``gather`` is
bitwise equal to reading every row from the store. Rows written in the store afterwards
(training) must be dropped with :meth:`HotRowCache.invalidate` (or replaced with
:meth:`HotRowCache.refresh`).

Threads and streams: one lock per cache (a prefetch and the current step may fetch the
same table concurrently). Device work (reading hits, writing admitted rows) runs on the
caller's current CUDA stream; a runtime calls it on the same side stream as its copies, so
reads of a slot are ordered before a later admission overwrites it.

Reads by the GPU alone (decode steps, recorded CUDA graphs): :meth:`HotRowCache.device_index`
gives a bucketed hash index of the cached ids and their slots as fixed device tensors,
refreshed in place when the cache changed (:mod:`~engram_sdk.table_runtime.hot_index`;
:mod:`engram_sdk.table_runtime.hot_gather` looks rows up in it). While a recorded
graph may replay, the cache is :meth:`~HotRowCache.frozen`: hits are served, nothing is
admitted or invalidated, so the index the graph reads stays true.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from engram_sdk.errors import InputError
from engram_sdk.table_runtime.hot_index import BucketIndex

_EMPTY = -1.0  # frequency of a free slot: below every counted id
_EXACT_VICTIMS = 65536  # up to this capacity victims are the least frequent of all rows
# Odd 64-bit multipliers (from the golden ratio and friends) for the sketch rows.
_SKETCH_SEEDS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)


@dataclass
class HotCacheStats:
    """What the cache served; ``rows_requested`` counts the ids passed to ``gather``."""

    rows_requested: int = 0
    hits: int = 0
    rows_fetched: int = 0  # distinct rows read from the store (each miss once per gather)
    admitted: int = 0
    evicted: int = 0
    invalidated: int = 0

    @property
    def rows_from_store(self) -> int:
        """Rows the store had to provide (the misses)."""
        return self.rows_requested - self.hits

    @property
    def hit_rate(self) -> float:
        """Hits over requested rows (0.0 before any request)."""
        return self.hits / self.rows_requested if self.rows_requested else 0.0


class CountMinSketch:
    """Approximate counts of int64 ids in ``depth`` x ``width`` counters (never under-counts
    between two agings)."""

    def __init__(self, width: int, depth: int = 4) -> None:
        if width < 1 or width & (width - 1):
            raise InputError(f"sketch width must be a power of two, got {width}")
        if not 1 <= depth <= len(_SKETCH_SEEDS):
            raise InputError(f"sketch depth must be in [1, {len(_SKETCH_SEEDS)}], got {depth}")
        self.width, self.depth = width, depth
        self.shift = np.uint64(64 - width.bit_length() + 1)
        self.seeds = np.asarray(_SKETCH_SEEDS[:depth], dtype=np.uint64)
        self.counts = np.zeros((depth, width), dtype=np.float32)

    def _cells(self, ids: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            mixed = ids.astype(np.uint64)[None, :] * self.seeds[:, None]
        return (mixed >> self.shift).astype(np.int64)  # (depth, n) in [0, width)

    def add(self, ids: np.ndarray, counts: np.ndarray) -> None:
        """Count distinct ``ids`` ``counts`` times each."""
        cells = torch.from_numpy(self._cells(ids))
        amounts = torch.from_numpy(np.ascontiguousarray(counts, dtype=np.float32))
        for row in range(self.depth):  # index_add_: duplicates add up, far faster than np.add.at
            torch.from_numpy(self.counts[row]).index_add_(0, cells[row], amounts)

    def estimate(self, ids: np.ndarray) -> np.ndarray:
        """Estimated counts of ``ids`` (float32)."""
        cells = self._cells(ids)
        return np.min(self.counts[np.arange(self.depth)[:, None], cells], axis=0)

    def halve(self) -> None:
        """Age every counter."""
        self.counts *= 0.5


def _most_frequent(freq: np.ndarray, among: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` entries of ``among`` with the highest ``freq``, most frequent first (ties:
    lower index first)."""
    if n < len(among):
        among = among[np.argpartition(-freq[among], n - 1)[:n]]
    return among[np.lexsort((among, -freq[among]))]


class HotRowCache:
    """Up to ``capacity`` rows of one table (``table_rows`` x ``dim``) kept on ``device``.

    ``gather(ids, fetch)`` returns the rows of ``ids``: cached ones from the device, the others
    from ``fetch(missing_ids)`` (the store), then offers the fetched rows for admission.
    """

    def __init__(
        self,
        capacity: int,
        *,
        table_rows: int,
        dim: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        sketch_width: int | None = None,
        age_every: int | None = None,
    ) -> None:
        for label, value, least in (
            ("capacity", capacity, 0),
            ("table_rows", table_rows, 1),
            ("dim", dim, 1),
        ):
            if not isinstance(value, int) or value < least:
                raise InputError(f"HotRowCache {label} must be an int >= {least}, got {value!r}")
        self.capacity, self.table_rows, self.dim = capacity, table_rows, dim
        self.device = torch.device(device)
        self.rows = torch.empty((capacity, dim), dtype=dtype, device=self.device)
        self.slot_ids = np.full(capacity, -1, dtype=np.int64)  # id held by each slot
        self.slot_freq = np.full(capacity, _EMPTY, dtype=np.float32)
        self._sorted_ids = np.empty(0, dtype=np.int64)  # cached ids, ascending
        self._sorted_slots = np.empty(0, dtype=np.int64)
        self._free = np.arange(capacity, dtype=np.int64)  # empty slots, taken from the front
        self._rng = np.random.default_rng(0)  # victim samples of big caches
        width = sketch_width or 1 << max(10, (4 * max(capacity, 1) - 1).bit_length())
        self.sketch = CountMinSketch(width)
        self.age_every = age_every or 16 * max(capacity, 1024)
        self._since_aging = 0
        self.stats = HotCacheStats()
        self._lock = threading.RLock()  # reentrant: see held()
        self.index = BucketIndex(capacity, self.device)  # what the GPU looks slots up in
        self._frozen = 0  # nesting depth of frozen()

    def __len__(self) -> int:
        """Rows held now."""
        return len(self._sorted_ids)

    def cached_ids(self) -> np.ndarray:
        """The ids held now, ascending (a copy)."""
        return self._sorted_ids.copy()

    # ---- lookups --------------------------------------------------------------------------
    def _check_ids(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise InputError(f"row ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
        ids = ids.astype(np.int64, copy=False)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.table_rows):
            raise InputError(
                f"row ids must be in [0, {self.table_rows}), got {ids.min()}..{ids.max()}"
            )
        return ids

    def _slots_of(self, ids: np.ndarray) -> np.ndarray:
        """Slot of each id, -1 where not cached."""
        if not len(self._sorted_ids):
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, ids).clip(max=len(self._sorted_ids) - 1)
        found = self._sorted_ids[pos] == ids
        return np.where(found, self._sorted_slots[pos], -1)

    def _count(self, unique: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Count a request in the sketch; the estimated frequencies of ``unique``."""
        self.sketch.add(unique, counts.astype(np.float32))
        self._since_aging += int(counts.sum())
        if self._since_aging >= self.age_every:
            self.sketch.halve()
            self.slot_freq[self.slot_freq > 0] *= 0.5
            self._since_aging = 0
        return self.sketch.estimate(unique)

    def gather(
        self, ids: np.ndarray, fetch: Callable[[np.ndarray], torch.Tensor | np.ndarray]
    ) -> torch.Tensor:
        """Rows (len(ids), dim) on the cache's device, bitwise equal to the store's rows.

        ``fetch(missing)`` must return the store rows of ``missing`` (a 1-D int64 array of
        distinct ids, ascending), as a tensor or numpy array of the cache's dtype.
        """
        ids = self._check_ids(ids)
        distinct = bool(len(ids) < 2 or np.all(ids[1:] > ids[:-1]))  # e.g. after torch.unique
        if distinct:
            unique, inverse, counts = ids, None, np.ones(len(ids), dtype=np.int64)
        else:
            unique, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        with self._lock:
            freq = self._count(unique, counts)
            slots = self._slots_of(unique)
            hit = slots >= 0
            self.slot_freq[slots[hit]] = freq[hit]
            missing = unique[~hit]
            out = torch.empty((len(unique), self.dim), dtype=self.rows.dtype, device=self.device)
            if hit.any():
                where = torch.from_numpy(np.flatnonzero(hit)).to(self.device)
                out[where] = self.rows[torch.from_numpy(slots[hit]).to(self.device)]
            if len(missing):
                fetched = self._as_rows(fetch(missing), len(missing))
                out[torch.from_numpy(np.flatnonzero(~hit)).to(self.device)] = fetched
                self._admit(missing, freq[~hit], fetched)
            self.stats.rows_requested += len(ids)
            self.stats.rows_fetched += len(missing)
            self.stats.hits += int(counts[hit].sum())
        if inverse is None:
            return out
        return out[torch.from_numpy(inverse.reshape(-1)).to(self.device)]

    def _as_rows(self, fetched: torch.Tensor | np.ndarray, n: int) -> torch.Tensor:
        rows = torch.as_tensor(fetched)
        if rows.shape != (n, self.dim) or rows.dtype != self.rows.dtype:
            raise InputError(
                f"fetch returned {tuple(rows.shape)} {rows.dtype}; expected ({n}, {self.dim}) "
                f"{self.rows.dtype}"
            )
        return rows.to(self.device, non_blocking=True)

    # ---- admission and invalidation -----------------------------------------------------
    def _admit(self, ids: np.ndarray, freq: np.ndarray, rows: torch.Tensor) -> None:
        """Offer fetched rows: free slots take the most frequent; then candidates more
        frequent than the least frequent of a pool of cached rows (all of them up to
        ``_EXACT_VICTIMS`` rows, a random sample of that many above) replace those rows,
        most frequent against least frequent. Nothing is admitted while frozen."""
        if not self.capacity or not len(ids) or self._frozen:
            return
        n_free = min(len(self._free), len(ids))
        rest = np.arange(len(ids))
        if n_free:
            top = _most_frequent(freq, rest, n_free)
            self._place(ids, freq, rows, top, self._free[:n_free])
            self._free = self._free[n_free:]
            if n_free == len(ids):
                return
            rest = np.setdiff1d(rest, top, assume_unique=True)
        if self.capacity <= _EXACT_VICTIMS:
            pool = np.arange(self.capacity)
        else:
            pool = np.unique(self._rng.integers(0, self.capacity, _EXACT_VICTIMS))
        contenders = rest[freq[rest] > self.slot_freq[pool].min()]
        k = min(len(contenders), len(pool))
        if not k:
            return
        contenders = _most_frequent(freq, contenders, k)
        victims = pool[np.argpartition(self.slot_freq[pool], k - 1)[:k]] if k < len(pool) else pool
        victims = victims[np.argsort(self.slot_freq[victims], kind="stable")]  # least first
        wins = freq[contenders] > self.slot_freq[victims]
        n = k if wins.all() else int(np.argmin(wins))  # wins is True on a prefix
        if n:
            self.stats.evicted += n
            self._place(ids, freq, rows, contenders[:n], victims[:n])

    def _place(
        self,
        ids: np.ndarray,
        freq: np.ndarray,
        rows: torch.Tensor,
        which: np.ndarray,
        slots: np.ndarray,
    ) -> None:
        """Put candidates ``which`` into ``slots`` (rows, ids, frequencies and the index)."""
        self.rows[torch.from_numpy(slots).to(self.device)] = rows[
            torch.from_numpy(which).to(self.device)
        ]
        old = self.slot_ids[slots]
        self.slot_ids[slots] = ids[which]
        self.slot_freq[slots] = freq[which]
        self.stats.admitted += len(which)
        self._replace_in_index(old[old >= 0], ids[which], slots)

    def _replace_in_index(self, gone: np.ndarray, added: np.ndarray, slots: np.ndarray) -> None:
        """Update the sorted index: ``gone`` ids leave, ``added`` ids arrive in ``slots``."""
        self.index.remove(gone)
        self.index.add(added, slots)
        keep = np.ones(len(self._sorted_ids), dtype=bool)
        keep[np.searchsorted(self._sorted_ids, gone)] = False
        held_ids, held_slots = self._sorted_ids[keep], self._sorted_slots[keep]
        order = np.argsort(added, kind="stable")
        at = np.searchsorted(held_ids, added[order])
        self._sorted_ids = np.insert(held_ids, at, added[order])
        self._sorted_slots = np.insert(held_slots, at, slots[order])

    def invalidate(self, ids: np.ndarray) -> int:
        """Drop cached copies of ``ids`` (rows rewritten in the store); returns how many."""
        ids = self._check_ids(ids)
        with self._lock:
            slots = self._slots_of(np.unique(ids))
            slots = slots[slots >= 0]
            if len(slots) and self._frozen:
                raise InputError(
                    f"{len(slots)} cached rows were rewritten while the cache is frozen (a "
                    "recorded decode step may still read them): finish the recorded decode first"
                )
            self._replace_in_index(self.slot_ids[slots], np.empty(0, np.int64), slots[:0])
            self.slot_ids[slots] = -1
            self.slot_freq[slots] = _EMPTY
            self._free = np.concatenate([self._free, slots])
            self.stats.invalidated += len(slots)
        return len(slots)

    def refresh(self, ids: np.ndarray, rows: torch.Tensor | np.ndarray) -> int:
        """Overwrite cached copies of ``ids`` with ``rows`` (the new store rows); returns how
        many were cached."""
        ids = self._check_ids(ids)
        new_rows = self._as_rows(rows, len(ids))
        with self._lock:
            slots = self._slots_of(ids)
            held = slots >= 0
            if held.any():
                index = torch.from_numpy(np.flatnonzero(held)).to(self.device)
                self.rows[torch.from_numpy(slots[held]).to(self.device)] = new_rows[index]
        return int(held.sum())

    # ---- warming and reads by the GPU alone -----------------------------------------------
    def warm(
        self,
        ids: np.ndarray,
        counts: np.ndarray,
        fetch: Callable[[np.ndarray], torch.Tensor | np.ndarray],
        *,
        limit: int | None = None,
        chunk: int = 1 << 20,
    ) -> int:
        """Count distinct ``ids`` ``counts`` times each (a frequency count of sample text)
        and admit the most frequent of them that are not cached, at most ``limit`` (default:
        the capacity), their rows read with ``fetch`` ``chunk`` rows at a time. Returns the
        number admitted. Admission follows the usual policy, so a warmed row replaces only a
        less frequent one."""
        ids = self._check_ids(ids)
        counts = np.asarray(counts)
        if counts.shape != ids.shape:
            raise InputError(f"counts {counts.shape} must match ids {ids.shape}")
        if len(ids) and not np.all(ids[1:] > ids[:-1]):
            raise InputError("warm() takes distinct ids, ascending (np.unique's output)")
        limit = self.capacity if limit is None else limit
        if limit < 0:
            raise InputError(f"limit must be >= 0, got {limit}")
        with self._lock:
            self._count(ids, counts)  # the sketch learns them; ranked by the exact counts
            freq = counts.astype(np.float32)
            slots = self._slots_of(ids)
            held = slots >= 0
            self.slot_freq[slots[held]] = freq[held]  # as a gather's hits: counted again
            fresh = np.flatnonzero(~held)
            top = _most_frequent(freq, fresh, min(limit, len(fresh), self.capacity))
        admitted = 0
        for start in range(0, len(top), chunk):
            part = np.sort(top[start : start + chunk])
            rows = self._as_rows(fetch(ids[part]), len(part))
            with self._lock:
                before = self.stats.admitted
                self._admit(ids[part], freq[part], rows)
                admitted += self.stats.admitted - before
        return admitted

    @contextlib.contextmanager
    def held(self) -> Iterator[HotRowCache]:
        """Within: no other thread changes the cache, so device work enqueued here reads
        slots that match :meth:`device_index` (a gather enqueued after it, say)."""
        with self._lock:
            yield self

    @contextlib.contextmanager
    def frozen(self) -> Iterator[HotRowCache]:
        """Within: hits are served, nothing is admitted, invalidating a cached row raises
        (a recorded CUDA graph reads the cache with the index it had)."""
        with self._lock:
            self._frozen += 1
        try:
            yield self
        finally:
            with self._lock:
                self._frozen -= 1

    def device_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The cache's :class:`~engram_sdk.table_runtime.hot_index.BucketIndex` on its
        device: two fixed int64 tensors (entry ids, entry slots), ``WAYS`` entries a bucket.

        When the cache changed since the last call, the changed entries are rewritten in
        place on the current stream: call it where the gathers that read them are ordered
        (the runtime's table stream), and never while recording a CUDA graph with a changed
        cache.
        """
        with self._lock:
            if (
                self.index.dirty
                and self.device.type == "cuda"
                and torch.cuda.is_current_stream_capturing()
            ):
                raise InputError("the hot-row cache changed while a CUDA graph is recorded")
            return self.index.on_device()
