"""A bounded, least-recently-used cache of decoded posting lists.

Posting lists belong to immutable segments: a list decoded once never changes while its
segment is live, so hot lists are served as arrays instead of a store read, a page checksum
and a varint decode. Entries of a segment are dropped when the segment leaves the scope's
table (a merge, a compaction, a rolled-back write, a dropped scope): see
:meth:`engram_sdk.memory.index.TrigramIndex.refresh`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

ListKey = tuple[int, int, int]  # scope id, segment id, dictionary entry
DEFAULT_CACHE_BYTES = 64 << 20


class ListCache:
    """Decoded lists by (scope, segment, entry), at most ``max_bytes`` of them (0: off)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._lists: OrderedDict[ListKey, np.ndarray] = OrderedDict()
        #: the cached keys of each (scope, segment): a drop visits a segment's own lists, not
        #: the whole cache (a session server drops a segment at almost every write)
        self._segments: dict[tuple[int, int], set[ListKey]] = {}
        self._lock = threading.Lock()

    def get_many(
        self, keys: Sequence[ListKey], read: Callable[[list[ListKey]], list[np.ndarray]]
    ) -> list[np.ndarray]:
        """Lists of ``keys``; those not cached come from ``read`` (in one call) and are kept
        (read-only)."""
        out: list[np.ndarray | None] = []
        missing = []
        with self._lock:
            for key in keys:
                ids = self._lists.get(key)
                if ids is not None:
                    self._lists.move_to_end(key)
                else:
                    missing.append(key)
                out.append(ids)
        if missing:
            fresh = dict(zip(missing, read(missing), strict=True))
            with self._lock:
                for key, ids in fresh.items():
                    ids.flags.writeable = False
                    self._keep(key, ids)
            out = [fresh[k] if ids is None else ids for k, ids in zip(keys, out, strict=True)]
        return out  # type: ignore[return-value]

    def _keep(self, key: ListKey, ids: np.ndarray) -> None:
        if ids.nbytes > self.max_bytes or key in self._lists:
            return
        self._lists[key] = ids
        self._segments.setdefault(key[:2], set()).add(key)
        self.nbytes += ids.nbytes
        while self.nbytes > self.max_bytes:
            old_key, old = self._lists.popitem(last=False)
            self.nbytes -= old.nbytes
            keys = self._segments[old_key[:2]]
            keys.discard(old_key)
            if not keys:
                del self._segments[old_key[:2]]

    def drop(self, sid: int, keep: Iterable[int] = ()) -> None:
        """Forget the lists of scope ``sid`` except those of segments in ``keep``."""
        live = set(keep)
        with self._lock:
            for segment in [s for s in self._segments if s[0] == sid and s[1] not in live]:
                for key in self._segments.pop(segment):
                    self.nbytes -= self._lists.pop(key).nbytes
