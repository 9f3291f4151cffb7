"""Append-only record segments of the ``shards://`` backend and their in-memory index.

A segment holds one commit's record writes: entries ``op ns_len key_len val_len ns key
val`` (op 1 = put, 0 = delete). Segments are immutable once their commit is published;
the index maps (namespace, key) to (segment, offset, length) by replaying them in order.
"""

from __future__ import annotations

import bisect
import mmap
import struct
from collections.abc import Iterator
from pathlib import Path

from engram_sdk.stores.errors import StoreCorruptError

MAGIC = b"ENGSEG01"
_HEAD = struct.Struct("<BHHI")


def encode_segment(records: dict[str, dict[bytes, bytes | None]]) -> bytes:
    """Serialise one commit's record writes."""
    parts = [MAGIC]
    for ns, staged in records.items():
        nsb = ns.encode()
        for key, value in staged.items():
            val = b"" if value is None else value
            parts += [
                _HEAD.pack(0 if value is None else 1, len(nsb), len(key), len(val)),
                nsb,
                key,
                val,
            ]
    return b"".join(parts)


class RecordIndex:
    """Where every live record lives, across the segments of one manifest."""

    def __init__(self) -> None:
        self.maps: list[mmap.mmap | bytes] = []
        self.where: dict[str, dict[bytes, tuple[int, int, int]]] = {}
        self._sorted: dict[str, list[bytes]] = {}

    def add_segment(self, path: Path, data: mmap.mmap | bytes) -> None:
        """Replay one segment on top of the index."""
        seg = len(self.maps)
        self.maps.append(data)
        if bytes(data[:8]) != MAGIC:
            raise StoreCorruptError(
                f"{path} is not a record segment (bad magic at offset 0)",
                path=path,
                offset=0,
                expected=MAGIC,
            )
        pos, end = 8, len(data)
        while pos < end:
            start = pos
            if pos + _HEAD.size > end:
                raise _truncated(path, pos)
            op, nl, kl, vl = _HEAD.unpack_from(data, pos)
            pos += _HEAD.size
            if op not in (0, 1) or not nl or not kl:
                raise StoreCorruptError(
                    f"{path} has a malformed entry at offset {start}",
                    path=path,
                    offset=start,
                    expected="op 0 or 1, non-empty namespace and key",
                )
            if pos + nl + kl + vl > end:
                raise _truncated(path, pos)
            try:
                ns = bytes(data[pos : pos + nl]).decode()
            except UnicodeDecodeError:
                raise StoreCorruptError(
                    f"{path} has an undecodable namespace at offset {pos}", path=path, offset=pos
                ) from None
            key = bytes(data[pos + nl : pos + nl + kl])
            entries = self.where.setdefault(ns, {})
            if op == 1:
                entries[key] = (seg, pos + nl + kl, vl)
            else:
                entries.pop(key, None)
            self._sorted.pop(ns, None)
            pos += nl + kl + vl

    def get(self, ns: str, key: bytes) -> bytes | None:
        """A record's value."""
        loc = self.where.get(ns, {}).get(key)
        if loc is None:
            return None
        seg, off, n = loc
        return bytes(self.maps[seg][off : off + n])

    def scan(self, ns: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Records of ``ns`` starting with ``prefix``, in key order."""
        keys = self._sorted.get(ns)
        if keys is None:
            keys = self._sorted[ns] = sorted(self.where.get(ns, {}))
        from engram_sdk.stores.dram import prefix_end

        i = bisect.bisect_left(keys, prefix)
        end = prefix_end(prefix)
        j = len(keys) if end is None else bisect.bisect_left(keys, end)
        for k in keys[i:j]:
            v = self.get(ns, k)
            if v is not None:
                yield k, v

    def count(self, ns: str, prefix: bytes) -> int:
        """Number of records of ``ns`` starting with ``prefix``."""
        if not prefix:
            return len(self.where.get(ns, {}))
        return sum(1 for _ in self.scan(ns, prefix))

    def live(self) -> dict[str, dict[bytes, bytes | None]]:
        """Every live record (for compaction)."""
        return {ns: {k: self.get(ns, k) for k in entries} for ns, entries in self.where.items()}


def _truncated(path: Path, offset: int) -> StoreCorruptError:
    return StoreCorruptError(f"{path} is truncated at offset {offset}", path=path, offset=offset)
