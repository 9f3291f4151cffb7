"""``PinnedFiles``: a ``shards://`` store's tables as one contiguous mapping, pinned for the GPU.

A shards table is split over 64 MiB files; gathering a few rows walks every file they touch
(a Python step per file). ``PinnedFiles`` maps each table's files back to back into one
read-only address range (``mmap`` with ``MAP_FIXED`` into a reserved range), so a gather is
one numpy take over the page cache. With ``pin=True`` it also registers that range with
CUDA (``cudaHostRegister``, read-only): the page-cache pages stay resident and the GPU reads
rows in place, as from a pinned ``dram://`` table (:meth:`pinned_rows`), e.g. a decode step
recorded as a CUDA graph. Registration pins the whole table in memory (it must fit); where
it fails (no CUDA, a driver without read-only registration) rows are still served from
the mapping, and ``pinned`` says so.

Read-only, a snapshot of the files at opening: reopen after the wrapped store commits.
Closing it closes the wrapped store.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from typing import Any

import numpy as np
from engram_sdk.stores.errors import StoreError
from engram_sdk.stores.models import TableSpec
from engram_sdk.stores.shards import ShardStore
from engram_sdk.stores.wrapping import WrappingStore

_REGISTER_READ_ONLY = 8  # cudaHostRegisterReadOnly
_MAP_FIXED = 0x10  # Linux; not exported by Python's mmap module
_ANONYMOUS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
_PROT_NONE = 0  # Linux; not exported by Python 3.11's mmap module


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


class _Mapping:
    """Files mapped back to back at one address (zeros where a part has no file)."""

    def __init__(self, parts: list[tuple[os.PathLike | None, int]]) -> None:
        if any(size % mmap.PAGESIZE for _, size in parts[:-1]):
            raise StoreError("shard files are not whole pages: they cannot be mapped back to back")
        self.libc = _libc()
        self.size = sum(size for _, size in parts)
        self.reserved = -(-self.size // mmap.PAGESIZE) * mmap.PAGESIZE
        self.addr = self._map(None, self.reserved, _PROT_NONE, _ANONYMOUS, -1)
        offset = 0
        try:
            for path, size in parts:  # each part lands inside the reserved range
                where = self.addr + offset
                if path is None:  # a shard never written: anonymous zeros
                    self._map(where, size, mmap.PROT_READ, _ANONYMOUS | _MAP_FIXED, -1)
                else:
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        self._map(where, size, mmap.PROT_READ, mmap.MAP_SHARED | _MAP_FIXED, fd)
                    finally:
                        os.close(fd)
                offset += size
        except BaseException:
            self.close()
            raise

    def _map(self, addr: int | None, size: int, prot: int, flags: int, fd: int) -> int:
        got = self.libc.mmap(addr, size, prot, flags, fd, 0)
        if got in (None, ctypes.c_void_p(-1).value):
            raise StoreError(f"mmap of {size} bytes failed: {os.strerror(ctypes.get_errno())}")
        return int(got)

    def array(self) -> np.ndarray:
        """The mapping as a read-only uint8 array (valid until :meth:`close`)."""
        raw = np.ctypeslib.as_array((ctypes.c_uint8 * self.size).from_address(self.addr))
        raw.flags.writeable = False
        return raw

    def close(self) -> None:
        if self.addr:
            self.libc.munmap(self.addr, self.reserved)
            self.addr = 0


class PinnedFiles(WrappingStore):
    """Read-only view of the ``shards://`` store ``store`` (see the module docstring)."""

    def __init__(self, store: ShardStore, *, pin: bool = False) -> None:
        if not isinstance(store, ShardStore):
            raise StoreError(f"PinnedFiles maps shards:// stores, got {store.uri}")
        super().__init__(store, "r")
        self._mappings: dict[str, _Mapping] = {}
        self.rows: dict[str, np.ndarray] = {}
        self.pinned: dict[str, bool] = {}
        try:
            for name, spec in store.tables().items():
                self._map_table(name, spec)
                self.pinned[name] = pin and self._register(name)
        except BaseException:
            self._unmap()
            raise

    def _map_table(self, name: str, spec: TableSpec) -> None:
        table = self.store.manifest["tables"][name]
        per_shard = table["rows_per_shard"] * spec.row_bytes
        parts: list[tuple[Any, int]] = []
        for s, shard in enumerate(table["shards"]):
            size = min(per_shard, spec.rows * spec.row_bytes - s * per_shard)
            if shard is not None and shard["bytes"] != size:
                raise StoreError(f"{name}: shard {s} holds {shard['bytes']} bytes, not {size}")
            parts.append((None if shard is None else self.store.data_dir / shard["file"], size))
        if not parts:
            return
        mapping = _Mapping(parts)
        self._mappings[name] = mapping
        self.rows[name] = mapping.array().view(spec.storage_dtype).reshape(spec.rows, spec.dim)

    def _register(self, name: str) -> bool:
        """Pin the table's mapping for CUDA (read-only); False where that is not possible."""
        if name not in self._mappings:
            return False
        try:
            import torch

            if not torch.cuda.is_available():
                return False
            mapping = self._mappings[name]
            err = torch.cuda.cudart().cudaHostRegister(
                mapping.addr, mapping.reserved, _REGISTER_READ_ONLY
            )
            return int(err) == 0
        except (ImportError, RuntimeError, AttributeError):
            return False

    def pinned_rows(self, table: str) -> np.ndarray | None:
        """The table's rows where CUDA registered them (the GPU reads them in place)."""
        return self.rows[table] if self.pinned.get(table) else None

    def _specs(self) -> dict[str, TableSpec]:
        return dict(self.store.tables())

    def _read_rows(self, spec: TableSpec, row_ids: np.ndarray, out: np.ndarray) -> None:
        rows = self.rows.get(spec.name)
        if rows is None:
            out[:] = 0
        else:
            np.take(rows, row_ids, axis=0, out=out)

    def _unmap(self) -> None:
        for name, mapping in self._mappings.items():
            if self.pinned.get(name):
                import torch

                torch.cuda.cudart().cudaHostUnregister(mapping.addr)
            mapping.close()
        self._mappings, self.rows, self.pinned = {}, {}, {}

    def _close(self) -> None:
        self._unmap()
        super()._close()
