"""The N-gram index: 64-bit bigram fingerprints → passage ids, in append-only segments.

Postings are written per ingest batch as one record per (scope, bucket) — the bucket is
the top 16 bits of the fingerprint — holding sorted (fingerprint, passage) pairs. A query
N-gram costs one prefix scan of its bucket (one record per segment; segments are merged
by :meth:`PostingIndex.compact`) and a binary search, independent of corpus size.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from engram_sdk.stores import Store

NS = "mem.post"
BUCKET_BITS = 16
_HEADER = np.dtype("<u4")


def encode(fps: np.ndarray, pids: np.ndarray) -> bytes:
    """Sorted pairs as ``n | fps (u8) | pids (u4)``."""
    return (
        np.uint32(len(fps)).tobytes() + fps.astype("<u8").tobytes() + pids.astype("<u4").tobytes()
    )


def decode(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode`."""
    n = int(np.frombuffer(raw, _HEADER, count=1)[0])
    fps = np.frombuffer(raw, "<u8", count=n, offset=4)
    pids = np.frombuffer(raw, "<u4", count=n, offset=4 + 8 * n)
    return fps, pids


def bucket_of(fps: np.ndarray) -> np.ndarray:
    """Bucket of each fingerprint."""
    return (fps.astype(np.uint64) >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)


class PostingIndex:
    """Postings of every scope in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _prefix(scope_id: int, bucket: int) -> bytes:
        return scope_id.to_bytes(4, "big") + bucket.to_bytes(2, "big")

    def add(self, scope_id: int, segment: int, fps: np.ndarray, pids: np.ndarray) -> int:
        """Write one segment of (fingerprint, passage) pairs; returns the records written."""
        if not len(fps):
            return 0
        fps = fps.astype(np.uint64)
        pids = pids.astype(np.uint32)
        pairs = np.unique(np.stack([fps, pids.astype(np.uint64)], axis=1), axis=0)
        fps, pids = pairs[:, 0], pairs[:, 1].astype(np.uint32)
        buckets = bucket_of(fps)
        cuts = np.flatnonzero(np.diff(buckets)) + 1
        seg = segment.to_bytes(4, "big")
        items = []
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(fps)], strict=True):
            key = self._prefix(scope_id, int(buckets[lo])) + seg
            items.append((key, encode(fps[lo:hi], pids[lo:hi])))
        self.store.put_many(NS, items)
        return len(items)

    def lookup(self, scope_id: int, fps: Iterable[int]) -> dict[int, np.ndarray]:
        """Passage ids (unique, sorted) of each fingerprint."""
        out: dict[int, np.ndarray] = {}
        for fp in fps:
            fp_u = np.uint64(fp)
            b = int(fp_u >> np.uint64(64 - BUCKET_BITS))
            found = []
            for _key, raw in self.store.scan(NS, self._prefix(scope_id, b)):
                seg_fps, seg_pids = decode(raw)
                lo, hi = (
                    np.searchsorted(seg_fps, fp_u, "left"),
                    np.searchsorted(seg_fps, fp_u, "right"),
                )
                if hi > lo:
                    found.append(seg_pids[lo:hi])
            out[int(fp)] = np.unique(np.concatenate(found)) if found else np.zeros(0, np.uint32)
        return out

    def segments(self, scope_id: int) -> int:
        """Most segments any bucket of the scope has (query cost grows with it)."""
        counts: dict[bytes, int] = {}
        for key, _ in self.store.scan(NS, scope_id.to_bytes(4, "big")):
            counts[key[:6]] = counts.get(key[:6], 0) + 1
        return max(counts.values(), default=0)

    def compact(self, scope_id: int, live: set[int] | None = None) -> None:
        """Merge every bucket's segments into one, dropping passages not in ``live``."""
        prefix = scope_id.to_bytes(4, "big")
        groups: dict[bytes, list[tuple[bytes, bytes]]] = {}
        for key, raw in self.store.scan(NS, prefix):
            groups.setdefault(key[:6], []).append((key, raw))
        with self.store.transaction():
            for head, entries in groups.items():
                if len(entries) < 2 and live is None:
                    continue
                parts = [decode(raw) for _, raw in entries]
                fps = np.concatenate([p[0] for p in parts])
                pids = np.concatenate([p[1] for p in parts])
                if live is not None:
                    keep = np.isin(pids, np.fromiter(live, np.uint32, len(live)))
                    fps, pids = fps[keep], pids[keep]
                self.store.delete_many(NS, [k for k, _ in entries])
                if len(fps):
                    order = np.lexsort((pids, fps))
                    self.store.put(
                        NS, head + (0).to_bytes(4, "big"), encode(fps[order], pids[order])
                    )

    def drop_scope(self, scope_id: int) -> None:
        """Delete every posting of a scope."""
        keys = [k for k, _ in self.store.scan(NS, scope_id.to_bytes(4, "big"))]
        self.store.delete_many(NS, keys)
