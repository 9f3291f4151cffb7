"""Where a hot-row cache keeps each row, as the GPU looks it up: a bucketed hash index.

A GPU reading rows in place (decode steps, recorded CUDA graphs) must find a row's cache slot
in one step, with fixed shapes. :class:`BucketIndex` holds ``buckets x WAYS`` (id, slot)
entries; a row id lives in bucket :func:`bucket_of` (a multiply-shift hash), in any of its
``WAYS`` entries. A lookup reads one bucket (``WAYS`` ids side by side) and compares: one
memory read, done inside the gather kernel (:mod:`engram_sdk.table_runtime.hot_gather`).

There are at least twice as many entries as cache slots, so a full bucket is rare; an id
that finds its bucket full is left out of the index (the GPU then reads that row from the
host: the same bytes, one PCIe read more). ``unindexed`` counts them.

The host keeps the entries in numpy arrays and the device a copy in fixed tensors;
:meth:`BucketIndex.on_device` brings the copy up to date (only the entries that changed) on
the current CUDA stream.
"""

from __future__ import annotations

import numpy as np
import torch

WAYS = 8  # entries per bucket: one 64-byte read of ids per lookup
EMPTY = -1  # the id of a free entry (row ids are >= 0)
MULTIPLIER = 0x5851F42D4C957F2D  # odd, below 2**63: products wrap alike in numpy, torch, Triton


def bucket_of(ids, buckets: int):
    """Bucket of each id (numpy or torch int64): the top ``log2(buckets)`` bits of
    ``ids * MULTIPLIER`` mod 2**64 (arithmetic shift, then masked: no unsigned types)."""
    shift = 64 - (buckets.bit_length() - 1)
    return ((ids * MULTIPLIER) >> shift) & (buckets - 1)


class BucketIndex:
    """The (id -> slot) entries of a cache of ``capacity`` slots (see the module)."""

    def __init__(self, capacity: int, device: torch.device) -> None:
        want = max(2, -(-2 * max(capacity, 1) // WAYS))
        self.buckets = 1 << (want - 1).bit_length()  # a power of two
        self.device = device
        self.ids = np.full(self.buckets * WAYS, EMPTY, dtype=np.int64)
        self.slots = np.zeros(self.buckets * WAYS, dtype=np.int64)
        self.unindexed = 0  # ids left out (their bucket was full)
        self._changed: list[np.ndarray] = []  # entry positions changed since the last sync
        self._device: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def dirty(self) -> bool:
        """Whether the device copy misses changes."""
        return self._device is None or bool(self._changed)

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """(n, WAYS) entry positions of each id's bucket."""
        return bucket_of(ids, self.buckets)[:, None] * WAYS + np.arange(WAYS)

    def remove(self, ids: np.ndarray) -> None:
        """Drop the entries of ``ids`` (those not indexed are ignored)."""
        if not len(ids):
            return
        where = self._positions(np.asarray(ids, dtype=np.int64))
        found = where[self.ids[where] == np.asarray(ids)[:, None]]
        self.ids[found] = EMPTY
        self._changed.append(found)

    def add(self, ids: np.ndarray, slots: np.ndarray) -> None:
        """Index distinct ``ids`` (not indexed yet) at ``slots``; an id whose bucket is full
        is left out."""
        ids, slots = np.asarray(ids, dtype=np.int64), np.asarray(slots, dtype=np.int64)
        bucket = bucket_of(ids, self.buckets)
        pending = np.arange(len(ids))
        for way in range(WAYS):  # each round: one id per bucket takes this way if it is free
            if not len(pending):
                break
            spot = bucket[pending] * WAYS + way
            free = pending[self.ids[spot] == EMPTY]
            _, first = np.unique(bucket[free], return_index=True)
            won = free[first]
            at = bucket[won] * WAYS + way
            self.ids[at], self.slots[at] = ids[won], slots[won]
            self._changed.append(at)
            pending = np.setdiff1d(pending, won, assume_unique=True)
        self.unindexed += len(pending)

    def on_device(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The entries' ids and slots as two fixed int64 tensors on the device, updated in
        place (the changed entries only) on the current stream."""
        if self._device is None:
            self._device = (
                torch.from_numpy(self.ids.copy()).to(self.device),
                torch.from_numpy(self.slots.copy()).to(self.device),
            )
            self._changed = []
        elif self._changed:
            if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
                raise RuntimeError("the hot-row index changed while a CUDA graph is recorded")
            where = np.unique(np.concatenate(self._changed))
            self._changed = []
            at = torch.from_numpy(where).to(self.device)
            self._device[0][at] = torch.from_numpy(self.ids[where]).to(self.device)
            self._device[1][at] = torch.from_numpy(self.slots[where]).to(self.device)
        return self._device
