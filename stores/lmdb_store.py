"""``lmdb:///path``: an LMDB environment; rows packed into ~1 MiB blocks per value.

One writer (``writer.lock``), any number of readers in any process, each seeing the last
committed snapshot (a reader picks up new commits, and map growth by another process, at
its next read). ``mode="r"`` works on read-only media (it falls back to ``lock=False``
when ``lock.mdb`` cannot be created). Every value carries an xxh3-64 trailer (format 2,
see :mod:`engram_sdk.stores.lmdb_format`): row blocks are checked once per snapshot on
first read, records on every read, everything by ``verify()`` (in a child process).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import numpy as np
from engram_sdk.stores.base import Store
from engram_sdk.stores.blocks import gather_by_block, parallel_take
from engram_sdk.stores.errors import StoreCorruptError, StoreError
from engram_sdk.stores.lmdb_format import (
    FORMAT_CHECKED,
    FORMAT_PLAIN,
    MAGIC,
    TRAILER,
    KeyName,
    block_key,
    corrupt,
    describe_key,
    parse_meta,
    read_header,
    record_key,
    seal,
    unseal,
)
from engram_sdk.stores.lmdb_io import (
    check_file_size,
    commit_error,
    cover_last_page,
    lmdb_error,
)
from engram_sdk.stores.lock import WriterLock, make_writable_dir
from engram_sdk.stores.models import TableSpec, VerifyReport
from engram_sdk.stores.pending import Pending

BLOCK_BYTES = 1 << 20
INITIAL_MAP = 1 << 28


def rows_per_block(spec: TableSpec) -> int:
    """Rows packed into one LMDB value."""
    return max(1, BLOCK_BYTES // spec.row_bytes)


class LmdbStore(Store):
    """LMDB backend. ``checksums=False`` creates a format 1 store (no trailers; benchmarks)."""

    backend = "lmdb"

    def __init__(
        self, uri: str, mode: str, folder: Path, durable: bool = True, *, checksums: bool = True
    ) -> None:
        super().__init__(uri, mode, durable)
        self.folder = folder
        self.path = folder / "data.mdb"
        self._lock: WriterLock | None = None
        self._snap = _Snapshot(-1)  # what is known about the newest snapshot read
        self._tables: dict[str, TableSpec] = {}
        self._ns: set[str] = set()
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"{folder} is a file; an lmdb:// store is a folder", path=folder)
        if mode == "r":
            if not self.path.is_file():
                raise StoreError(f"no LMDB store here: {self.path} does not exist", path=self.path)
            self.env = self._open_readonly()
        else:
            make_writable_dir(folder)
            self._lock = self._writer = WriterLock(folder)
            self._lock.acquire()
            try:
                self.env = lmdb.open(
                    str(folder),
                    map_size=max(INITIAL_MAP, 2 * _file_size(self.path)),
                    max_dbs=8,
                    subdir=True,
                    sync=durable,
                    metasync=durable,
                    readahead=False,
                )
            except lmdb.Error as exc:
                self._lock.release()
                raise lmdb_error(self.path, exc) from exc
        try:
            check_file_size(self.env, self.path)
            self._open_dbs(checksums)
        except BaseException:
            self._close()
            raise

    def _open_readonly(self) -> lmdb.Environment:
        kwargs = dict(readonly=True, max_dbs=8, subdir=True, readahead=False)
        try:
            return lmdb.open(str(self.folder), lock=True, **kwargs)
        except lmdb.Error:  # read-only media: no lock.mdb can be created there
            try:
                return lmdb.open(str(self.folder), lock=False, **kwargs)
            except lmdb.Error as exc:
                raise lmdb_error(self.path, exc) from exc

    def _foreign(self) -> StoreCorruptError:
        return StoreCorruptError(
            f"{self.path} is an LMDB file of another program, not an engram-sdk store",
            path=self.path,
            expected=MAGIC,
        )

    def _open_dbs(self, checksums: bool) -> None:
        try:
            if self.mode == "r":
                self.meta = self.env.open_db(b"meta", create=False)
                self.rows_db = self.env.open_db(b"tables", create=False)
                self.rec_db = self.env.open_db(b"records", create=False)
            else:
                self._create_dbs(FORMAT_CHECKED if checksums else FORMAT_PLAIN)
        except (lmdb.NotFoundError, lmdb.IncompatibleError, lmdb.InvalidError) as exc:
            raise self._foreign() from exc
        except lmdb.Error as exc:
            raise lmdb_error(self.path, exc) from exc
        with self._read() as txn:
            raw = txn.get(b"format", db=self.meta)
            version = self._read_header(None if raw is None else bytes(raw))
            self._checked = version == FORMAT_CHECKED
            self._load_specs(txn)

    def _create_dbs(self, version: int) -> None:
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
                header = json.dumps({"magic": MAGIC, "format_version": version}).encode()
                txn.put(b"format", seal(b"format", header, version == FORMAT_CHECKED), db=self.meta)

    def _read_header(self, raw: bytes | None) -> int:
        """The store's format version, from its checksummed (or format 1 plain) header."""
        return read_header(self.path, raw, self._foreign)

    def _load_specs(self, txn: lmdb.Transaction) -> None:
        cursor = ((bytes(k), v) for k, v in txn.cursor(db=self.meta))
        self._tables, self._ns = parse_meta(self.path, cursor, self._checked)

    @contextlib.contextmanager
    def _read(self) -> Iterator[lmdb.Transaction]:
        try:
            txn = self.env.begin(buffers=True)
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)  # another process grew the map
            self._snap = _Snapshot(self._snap.snapshot)  # the map moved: addresses are stale
            txn = self.env.begin(buffers=True)
        try:
            if txn.id() > self._snap.snapshot:
                self._new_snapshot(txn)
            yield txn
        except lmdb.Error as exc:
            raise lmdb_error(self.path, exc) from exc
        finally:
            txn.abort()

    def _new_snapshot(self, txn: lmdb.Transaction) -> None:
        check_file_size(self.env, self.path)
        if self.mode == "r" and self._snap.snapshot != -1:
            self._load_specs(txn)
        self._snap = _Snapshot(txn.id())

    def _state(self, txn: lmdb.Transaction) -> _Snapshot:
        """Caches of ``txn``'s snapshot (a thread still on an older one gets its own, unshared)."""
        snap = self._snap
        return snap if snap.snapshot == txn.id() else _Snapshot(txn.id())

    # ---- checked access ------------------------------------------------------------------
    def _block(self, txn: lmdb.Transaction, spec: TableSpec, b: int) -> memoryview | None:
        """Rows of block ``b`` (None: never written), checked once per snapshot."""
        verified = self._state(txn).verified
        key = block_key(spec.name, b)
        raw = txn.get(key, db=self.rows_db)
        if raw is None:
            if key not in verified:
                self._check_absent(txn, self.rows_db, key)
                verified.add(key)
            return None
        if key in verified or not self._checked:
            payload = memoryview(raw)[: len(raw) - (TRAILER if self._checked else 0)]
        else:
            payload = unseal(self.path, f"table {spec.name!r} block {b}", key, raw, True)
        rpb = rows_per_block(spec)
        want = min(rpb, spec.rows - b * rpb) * spec.row_bytes
        if len(payload) != want:
            raise corrupt(self.path, f"table {spec.name!r} block {b} is {len(payload)} bytes", want)
        verified.add(key)
        return payload

    def _check_absent(self, txn: lmdb.Transaction, db: lmdb._Database, key: bytes) -> None:
        """A key not found: check the entries around where it would be.

        A flipped key byte leaves the entry in place under a wrong key (its checksum fails);
        a flipped branch key misroutes the lookup (the neighbours are out of order, or the
        cursor finds the key that the lookup missed).
        """
        if not self._checked:
            return
        cur = txn.cursor(db=db)
        after = cur.set_range(key)  # True: the cursor is on the first key >= key
        if not after and not cur.last():
            return
        for step in range(2):
            if step and not cur.prev():
                return
            found = bytes(cur.key())
            unseal(self.path, f"entry {describe_key(found)}", found, cur.value(), True)
            in_order = found > key if (after and not step) else found < key
            if not in_order:
                raise corrupt(
                    self.path, f"a lookup of {describe_key(key)} disagrees with a cursor walk"
                )

    # ---- primitives ----------------------------------------------------------------------
    def _specs(self) -> dict[str, TableSpec]:
        if self.mode == "r":
            with self._read():
                pass
        return dict(self._tables)

    def _read_rows(self, spec: TableSpec, row_ids: np.ndarray, out: np.ndarray) -> None:
        rpb = rows_per_block(spec)
        with self._read() as txn:
            if not self._take_from_map(txn, spec, rpb, row_ids, out):

                def block(b: int) -> np.ndarray | None:
                    payload = self._block(txn, spec, b)
                    if payload is None:
                        return None
                    return np.frombuffer(payload, dtype=spec.storage_dtype).reshape(-1, spec.dim)

                gather_by_block(row_ids, rpb, block, out)

    def _take_from_map(
        self, txn: lmdb.Transaction, spec: TableSpec, rpb: int, ids: np.ndarray, out: np.ndarray
    ) -> bool:
        """One ``np.take`` over the memory map spanning the touched blocks; False if it can't.

        Block values are overflow pages at fixed map offsets, so rows are addressed as
        ``(block address - lowest address) / row bytes + row within block`` when every block
        starts at the same offset modulo the row size. Block addresses of a snapshot are
        remembered (and each block checked once) while it stays the newest (the open read
        txn pins its pages), so repeated gathers skip the B-tree lookups and checksums.
        """
        cache = self._state(txn).addresses
        addr = cache.get(spec.name)
        if addr is None:
            addr = cache[spec.name] = np.zeros(-(-spec.rows // rpb), np.int64)
        blocks = ids // rpb
        touched = np.zeros(len(addr), bool)
        touched[blocks] = True
        todo = np.flatnonzero(touched & (addr == 0))
        for b in todo.tolist():
            payload = self._block(txn, spec, b)
            if payload is None:  # never written: zeros, which the block path handles
                return False
            addr[b] = np.frombuffer(payload, np.uint8).__array_interface__["data"][0]
        which = np.flatnonzero(touched)
        used = addr[which]
        base = int(used.min())
        if ((used - base) % spec.row_bytes).any():
            return False
        last = int(which[used.argmax()])  # the region ends with this block's last row, and
        # not a byte later: past the end of the file the map is unbacked (SIGBUS)
        span = int(used.max()) - base + min(rpb, spec.rows - last * rpb) * spec.row_bytes
        region = np.frombuffer((ctypes.c_char * span).from_address(base), spec.storage_dtype)
        region = region.reshape(-1, spec.dim)
        idx = (addr[blocks] - base) // spec.row_bytes + (ids - blocks * rpb)
        parallel_take(region, idx, out)
        return True

    def _get(self, ns: str, keys: Sequence[bytes]) -> list[bytes | None]:
        with self._read() as txn:
            out: list[bytes | None] = []
            for k in keys:
                full = record_key(ns, k)
                v = txn.get(full, db=self.rec_db)
                if v is None:
                    self._check_absent(txn, self.rec_db, full)
                    out.append(None)
                else:
                    what = KeyName("record", full)
                    out.append(bytes(unseal(self.path, what, full, v, self._checked)))
            return out

    def _scan(self, ns: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        full = record_key(ns, prefix)
        skip = len(ns.encode()) + 1
        with self._read() as txn:
            cur = txn.cursor(db=self.rec_db)
            if not cur.set_range(full):
                return
            for key, value in cur:
                key = bytes(key)
                if not key.startswith(full):
                    break
                what = KeyName("record", key)
                yield key[skip:], bytes(unseal(self.path, what, key, value, self._checked))

    def _namespaces(self) -> list[str]:
        if self.mode == "r":
            with self._read():
                pass
        return sorted(self._ns)

    def _commit(self, pending: Pending) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    self._apply(txn, pending)
                break
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
                self._snap = _Snapshot(self._snap.snapshot)  # the map moved: addresses are stale
            except lmdb.Error as exc:
                raise commit_error(self.uri, self.folder, exc) from exc
        cover_last_page(self.env, self.path)
        self._tables.update(pending.new_tables)
        self._ns.update(pending.records)

    def _apply(self, txn: lmdb.Transaction, pending: Pending) -> None:
        checked = self._checked
        for name, spec in pending.new_tables.items():
            key = b"table:" + name.encode()
            txn.put(key, seal(key, spec.model_dump_json().encode(), checked), db=self.meta)
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
                key = block_key(name, b)
                first, last = int(idx[0]), int(idx[-1])
                if len(idx) == n and ids[first] == b * rpb and ids[last] == b * rpb + n - 1:
                    payload = values[first : last + 1].tobytes()  # the whole block, in order
                    txn.put(key, seal(key, payload, checked), db=self.rows_db)
                    continue
                old = None if name in pending.new_tables else txn.get(key, db=self.rows_db)
                if old is None:
                    rows = np.zeros((n, spec.dim), spec.storage_dtype)
                else:
                    what = f"table {name!r} block {b}"
                    old_rows = unseal(self.path, what, key, old, checked)
                    rows = np.frombuffer(old_rows, spec.storage_dtype).reshape(n, spec.dim).copy()
                rows[ids[idx] - b * rpb] = values[idx]
                txn.put(key, seal(key, rows.tobytes(), checked), db=self.rows_db)
        for ns, staged in pending.records.items():
            marker = b"ns:" + ns.encode()
            txn.put(marker, seal(marker, b"", checked), db=self.meta)
            for k, v in staged.items():
                full = record_key(ns, k)
                if v is None:
                    txn.delete(full, db=self.rec_db)
                else:
                    txn.put(full, seal(full, v, checked), db=self.rec_db)

    def _verify(self, report: VerifyReport) -> None:
        from engram_sdk.stores.lmdb_check import check_in_child

        check_in_child(self.folder, report)

    def _format_version(self) -> int:
        return FORMAT_CHECKED if self._checked else FORMAT_PLAIN

    def _bytes_on_disk(self) -> int:
        return _file_size(self.path)

    def _last_commit(self) -> int | None:
        return self.env.info()["last_txnid"]

    def _close(self) -> None:
        env = getattr(self, "env", None)
        if env is not None:
            env.close()
        if self._lock is not None:
            self._lock.release()


@dataclass
class _Snapshot:
    """Per-snapshot caches: block addresses in the map, and block keys already checked."""

    snapshot: int
    addresses: dict[str, np.ndarray] = field(default_factory=dict)
    verified: set[bytes] = field(default_factory=set)


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
