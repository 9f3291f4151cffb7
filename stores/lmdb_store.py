"""``lmdb:///path``: an LMDB environment; rows packed into ~1 MiB blocks per value.

One writer (``writer.lock``), any number of readers in any process, each seeing the last
committed snapshot. The map grows by itself when full. ``mode="r"`` works on read-only
media (it falls back to ``lock=False`` when ``lock.mdb`` cannot be created).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import lmdb
import numpy as np
from engram_sdk.stores.base import Store
from engram_sdk.stores.blocks import gather_by_block, parallel_take
from engram_sdk.stores.errors import StoreCorruptError, StoreError, StoreVersionError
from engram_sdk.stores.lock import WriterLock, make_writable_dir
from engram_sdk.stores.models import STORE_FORMAT_VERSION, TableSpec, VerifyReport
from engram_sdk.stores.pending import Pending

BLOCK_BYTES = 1 << 20
INITIAL_MAP = 1 << 28
MAGIC = "engram-sdk-store"


def rows_per_block(spec: TableSpec) -> int:
    """Rows packed into one LMDB value."""
    return max(1, BLOCK_BYTES // spec.row_bytes)


def _block_key(table: str, block: int) -> bytes:
    return table.encode() + b"\x00" + block.to_bytes(8, "big")


def _record_key(ns: str, key: bytes) -> bytes:
    return ns.encode() + b"\x00" + key


class LmdbStore(Store):
    """LMDB backend."""

    backend = "lmdb"

    def __init__(self, uri: str, mode: str, folder: Path, durable: bool = True) -> None:
        super().__init__(uri, mode, durable)
        self.folder = folder
        self._lock: WriterLock | None = None
        self._addr_cache: dict[str, tuple[int, np.ndarray]] = {}
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"{folder} is a file; an lmdb:// store is a folder")
        if mode == "r":
            if not (folder / "data.mdb").is_file():
                raise StoreError(f"{folder}: no LMDB store here (no data.mdb)")
            self.env = self._open_readonly()
        else:
            make_writable_dir(folder)
            self._lock = WriterLock(folder)
            self._lock.acquire()
            size = max(INITIAL_MAP, 2 * _file_size(folder / "data.mdb"))
            self.env = lmdb.open(
                str(folder),
                map_size=size,
                max_dbs=8,
                subdir=True,
                sync=durable,
                metasync=durable,
                readahead=False,
            )
        try:
            self._open_dbs()
        except BaseException:
            self._close()
            raise

    def _open_readonly(self) -> lmdb.Environment:
        kwargs = dict(readonly=True, max_dbs=8, subdir=True, readahead=False)
        try:
            return lmdb.open(str(self.folder), lock=True, **kwargs)
        except lmdb.Error:  # read-only media: no lock.mdb can be created there
            return lmdb.open(str(self.folder), lock=False, **kwargs)

    def _open_dbs(self) -> None:
        foreign = StoreCorruptError(
            f"{self.folder / 'data.mdb'} is an LMDB file of another program, not an engram-sdk store"
        )
        try:
            if self.mode == "r":
                self.meta = self.env.open_db(b"meta", create=False)
                self.rows_db = self.env.open_db(b"tables", create=False)
                self.rec_db = self.env.open_db(b"records", create=False)
            else:
                with self.env.begin(write=True) as txn:
                    fresh = txn.stat()["entries"] == 0
                    self.meta = self.env.open_db(b"meta", txn=txn)
                    self.rows_db = self.env.open_db(b"tables", txn=txn)
                    self.rec_db = self.env.open_db(b"records", txn=txn)
                    if self.mode == "w":
                        for db in (self.meta, self.rows_db, self.rec_db):
                            txn.drop(db, delete=False)
                        fresh = True
                    if fresh and txn.get(b"format", db=self.meta) is None:
                        header = {"magic": MAGIC, "format_version": STORE_FORMAT_VERSION}
                        txn.put(b"format", json.dumps(header).encode(), db=self.meta)
        except (lmdb.NotFoundError, lmdb.IncompatibleError, lmdb.InvalidError) as exc:
            raise foreign from exc
        with self.env.begin() as txn:
            raw = txn.get(b"format", db=self.meta)
        try:
            header = json.loads(raw)
            assert header["magic"] == MAGIC
        except Exception as exc:
            raise foreign from exc
        if header["format_version"] > STORE_FORMAT_VERSION:
            raise StoreVersionError(
                f"{self.folder} has store format {header['format_version']}, newer than this "
                f"engram-sdk reads ({STORE_FORMAT_VERSION}); upgrade engram-sdk"
            )
        self._load_specs()

    def _load_specs(self) -> None:
        self._tables: dict[str, TableSpec] = {}
        self._ns: set[str] = set()
        with self.env.begin(db=self.meta) as txn:
            for key, value in txn.cursor():
                if key.startswith(b"table:"):
                    spec = TableSpec.model_validate_json(value)
                    self._tables[spec.name] = spec
                elif key.startswith(b"ns:"):
                    self._ns.add(key[3:].decode())

    @contextlib.contextmanager
    def _read(self) -> Iterator[lmdb.Transaction]:
        try:
            txn = self.env.begin(buffers=True)
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)  # another process grew the map
            self._addr_cache = {}
            txn = self.env.begin(buffers=True)
        try:
            yield txn
        finally:
            txn.abort()

    # ---- primitives ----------------------------------------------------------------------
    def _specs(self) -> dict[str, TableSpec]:
        if self.mode == "r":
            self._load_specs()
        return dict(self._tables)

    def _read_rows(self, spec: TableSpec, row_ids: np.ndarray, out: np.ndarray) -> None:
        rpb = rows_per_block(spec)
        with self._read() as txn:
            if not self._take_from_map(txn, spec, rpb, row_ids, out):

                def block(b: int) -> np.ndarray | None:
                    raw = txn.get(_block_key(spec.name, b), db=self.rows_db)
                    if raw is None:
                        return None
                    rows = np.frombuffer(raw, dtype=spec.storage_dtype)
                    return rows.reshape(-1, spec.dim)

                gather_by_block(row_ids, rpb, block, out)

    def _take_from_map(
        self, txn: lmdb.Transaction, spec: TableSpec, rpb: int, ids: np.ndarray, out: np.ndarray
    ) -> bool:
        """One ``np.take`` over the memory map spanning the touched blocks; False if it can't.

        Block values are overflow pages at fixed map offsets, so rows are addressed as
        ``(block address - lowest address) / row bytes + row within block`` when every block
        starts at the same offset modulo the row size. Block addresses of a snapshot are
        remembered while it stays the newest (the open read txn pins its pages), so repeated
        gathers skip the B-tree lookups.
        """
        snapshot = txn.id()
        cached = self._addr_cache.get(spec.name)
        if cached is None or cached[0] != snapshot:
            cached = (snapshot, np.zeros(-(-spec.rows // rpb), np.int64))
            self._addr_cache[spec.name] = cached
        addr = cached[1]
        blocks = ids // rpb
        touched = np.zeros(len(addr), bool)
        touched[blocks] = True
        todo = np.flatnonzero(touched & (addr == 0))
        for b in todo.tolist():
            raw = txn.get(_block_key(spec.name, b), db=self.rows_db)
            if raw is None:  # never written: zeros, which the block path handles
                return False
            addr[b] = np.frombuffer(raw, np.uint8).__array_interface__["data"][0]
        used = addr[touched]
        base = int(used.min())
        if ((used - base) % spec.row_bytes).any():
            return False
        span = int(used.max()) - base + rpb * spec.row_bytes
        region = np.frombuffer((ctypes.c_char * span).from_address(base), spec.storage_dtype)
        region = region.reshape(-1, spec.dim)
        idx = (addr[blocks] - base) // spec.row_bytes + (ids - blocks * rpb)
        parallel_take(region, idx, out)
        return True

    def _get(self, ns: str, keys: Sequence[bytes]) -> list[bytes | None]:
        with self._read() as txn:
            out = []
            for k in keys:
                v = txn.get(_record_key(ns, k), db=self.rec_db)
                out.append(None if v is None else bytes(v))
            return out

    def _scan(self, ns: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        full = _record_key(ns, prefix)
        skip = len(ns.encode()) + 1
        with self._read() as txn:
            cur = txn.cursor(db=self.rec_db)
            if not cur.set_range(full):
                return
            for key, value in cur:
                key = bytes(key)
                if not key.startswith(full):
                    break
                yield key[skip:], bytes(value)

    def _namespaces(self) -> list[str]:
        if self.mode == "r":
            self._load_specs()
        return sorted(self._ns)

    def _commit(self, pending: Pending) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    self._apply(txn, pending)
                break
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
                self._addr_cache = {}
        self._tables.update(pending.new_tables)
        self._ns.update(pending.records)

    def _apply(self, txn: lmdb.Transaction, pending: Pending) -> None:
        for name, spec in pending.new_tables.items():
            txn.put(b"table:" + name.encode(), spec.model_dump_json().encode(), db=self.meta)
        specs = {**self._tables, **pending.new_tables}
        for name in pending.rows:
            spec = specs[name]
            ids, values = pending.final_rows(name)  # type: ignore[misc]
            rpb = rows_per_block(spec)
            blocks = ids // rpb
            cuts = np.flatnonzero(np.diff(blocks)) + 1
            for idx in np.split(np.arange(len(ids)), cuts):
                b = int(blocks[idx[0]])
                n = min(rpb, spec.rows - b * rpb)
                key = _block_key(name, b)
                old = None if name in pending.new_tables else txn.get(key, db=self.rows_db)
                rows = (
                    np.zeros((n, spec.dim), spec.storage_dtype)
                    if old is None
                    else np.frombuffer(old, spec.storage_dtype).reshape(n, spec.dim).copy()
                )
                rows[ids[idx] - b * rpb] = values[idx]
                txn.put(key, rows.tobytes(), db=self.rows_db)
        for ns, staged in pending.records.items():
            txn.put(b"ns:" + ns.encode(), b"", db=self.meta)
            for k, v in staged.items():
                if v is None:
                    txn.delete(_record_key(ns, k), db=self.rec_db)
                else:
                    txn.put(_record_key(ns, k), v, db=self.rec_db)

    def _verify(self, report: VerifyReport) -> None:
        from engram_sdk.stores.models import Problem

        path = str(self.folder / "data.mdb")
        report.checked_files = 1
        with self._read() as txn:
            for name, spec in self._specs().items():
                rpb = rows_per_block(spec)
                cur = txn.cursor(db=self.rows_db)
                prefix = name.encode() + b"\x00"
                if cur.set_range(prefix):
                    for key, value in cur:
                        if not bytes(key).startswith(prefix):
                            break
                        b = int.from_bytes(bytes(key)[len(prefix) :], "big")
                        want = min(rpb, spec.rows - b * rpb) * spec.row_bytes
                        report.checked_bytes += len(value)
                        if b * rpb >= spec.rows or len(value) != want:
                            report.problems.append(
                                Problem(
                                    file=path,
                                    message=f"table {name!r} block {b}: {len(value)} bytes, "
                                    f"expected {want}",
                                )
                            )

    def _bytes_on_disk(self) -> int:
        return _file_size(self.folder / "data.mdb")

    def _close(self) -> None:
        env = getattr(self, "env", None)
        if env is not None:
            env.close()
        if self._lock is not None:
            self._lock.release()


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
