"""The N-gram index: 64-bit bigram fingerprints → passage ids, in append-only segments.

Each ingest batch writes one segment: one record per (scope, segment, bucket) — the bucket
is the top 16 bits of the fingerprint — holding its sorted (fingerprint, passage) pairs.
Keys grow in insertion order, so the B-tree stays densely packed. A query N-gram costs one
``get`` per live segment of the scope (segments are merged by :meth:`compact`) and a
binary search: independent of corpus size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from engram_sdk.stores import Store

NS = "mem.post"
BUCKET_BITS = 16
_LOW = np.uint64((1 << (64 - BUCKET_BITS)) - 1)


def encode(fps: np.ndarray, pids: np.ndarray) -> bytes:
    """Sorted pairs as ``n | low 48 bits of fps (6 bytes each) | pids (u4)``."""
    low = (fps & _LOW).astype("<u8").view(np.uint8).reshape(-1, 8)[:, :6]
    return np.uint32(len(fps)).tobytes() + low.tobytes() + pids.astype("<u4").tobytes()


def decode(raw: bytes, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode` (the bucket restores the top bits)."""
    n = int(np.frombuffer(raw, "<u4", count=1)[0])
    low = np.zeros((n, 8), np.uint8)
    low[:, :6] = np.frombuffer(raw, np.uint8, count=6 * n, offset=4).reshape(n, 6)
    fps = low.view("<u8").ravel() | (np.uint64(bucket) << np.uint64(64 - BUCKET_BITS))
    pids = np.frombuffer(raw, "<u4", count=n, offset=4 + 6 * n)
    return fps, pids


def bucket_of(fps: np.ndarray) -> np.ndarray:
    """Bucket of each fingerprint."""
    return (fps.astype(np.uint64) >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)


def _key(scope_id: int, segment: int, bucket: int) -> bytes:
    return scope_id.to_bytes(4, "big") + segment.to_bytes(4, "big") + bucket.to_bytes(2, "big")


def unique_pairs(fps: np.ndarray, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fingerprint, passage) pairs sorted by fingerprint, duplicates removed."""
    order = np.lexsort((pids, fps))
    fps, pids = fps[order], pids[order]
    keep = np.ones(len(fps), bool)
    keep[1:] = (fps[1:] != fps[:-1]) | (pids[1:] != pids[:-1])
    return fps[keep], pids[keep]


class PostingIndex:
    """Postings of every scope in one store; the caller tracks each scope's live segments."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def remove(self, scope_id: int, pids: Sequence[int]) -> None:
        """Passages deleted: their postings stay until :meth:`compact` (verification skips them)."""

    def add(self, scope_id: int, segment: int, fps: np.ndarray, pids: np.ndarray) -> int:
        """Write one segment of (fingerprint, passage) pairs; returns the records written."""
        if not len(fps):
            return 0
        fps, pids = unique_pairs(fps.astype(np.uint64), pids.astype(np.uint32))
        buckets = bucket_of(fps)
        cuts = np.flatnonzero(np.diff(buckets)) + 1
        items = [
            (_key(scope_id, segment, int(buckets[lo])), encode(fps[lo:hi], pids[lo:hi]))
            for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(fps)], strict=True)
        ]
        self.store.put_many(NS, items)
        return len(items)

    def lookup(
        self, scope_id: int, segments: Sequence[int], fps: Iterable[int]
    ) -> dict[int, np.ndarray]:
        """Passage ids (unique, sorted) of each fingerprint: one get per live segment."""
        fps = [int(fp) for fp in fps]
        keys = [_key(scope_id, seg, fp >> (64 - BUCKET_BITS)) for fp in fps for seg in segments]
        raws = self.store.get_many(NS, keys)
        out: dict[int, np.ndarray] = {}
        for i, fp in enumerate(fps):
            fp_u = np.uint64(fp)
            found = []
            for raw in raws[i * len(segments) : (i + 1) * len(segments)]:
                if raw is None:
                    continue
                seg_fps, seg_pids = decode(raw, fp >> (64 - BUCKET_BITS))
                lo, hi = (
                    np.searchsorted(seg_fps, fp_u, "left"),
                    np.searchsorted(seg_fps, fp_u, "right"),
                )
                if hi > lo:
                    found.append(seg_pids[lo:hi])
            out[fp] = np.unique(np.concatenate(found)) if found else np.zeros(0, np.uint32)
        return out

    def compact(
        self, scope_id: int, segments: Sequence[int], into: int, live: set[int] | None
    ) -> None:
        """Merge ``segments`` into segment ``into``, dropping passages not in ``live``."""
        fps_parts, pid_parts, old_keys = [], [], []
        for seg in segments:
            prefix = scope_id.to_bytes(4, "big") + seg.to_bytes(4, "big")
            for key, raw in self.store.scan(NS, prefix):
                f, p = decode(raw, int.from_bytes(key[8:10], "big"))
                fps_parts.append(f)
                pid_parts.append(p)
                old_keys.append(key)
        with self.store.transaction():
            self.store.delete_many(NS, old_keys)
            if fps_parts:
                fps, pids = np.concatenate(fps_parts), np.concatenate(pid_parts)
                if live is not None:
                    keep = np.isin(pids, np.fromiter(live, np.uint32, len(live)))
                    fps, pids = fps[keep], pids[keep]
                self.add(scope_id, into, fps, pids)

    def drop_scope(self, scope_id: int) -> None:
        """Delete every posting of a scope."""
        keys = [k for k, _ in self.store.scan(NS, scope_id.to_bytes(4, "big"))]
        self.store.delete_many(NS, keys)
