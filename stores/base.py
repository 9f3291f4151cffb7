"""The one storage interface: row tables and namespaced records, with atomic commits.

A backend implements the ``_`` primitives over its committed state; this class adds
validation, transactions (staged in :class:`Pending`, applied by ``_commit`` all or
nothing) and caller-provided output buffers.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from engram_sdk.stores import validate
from engram_sdk.stores.errors import InputError, StoreError, StoreReadOnlyError
from engram_sdk.stores.lock import WriterLock, os_store_error
from engram_sdk.stores.models import STORE_FORMAT_VERSION, StoreInfo, TableSpec, VerifyReport
from engram_sdk.stores.pending import Pending

MODES = ("r", "w", "a")
IN_PLACE_TOKENS = 64  # Store.in_place_tokens: decoding-size steps


class Store(ABC):
    """Row tables (``gather``/``scatter``) and bytes records (``get``/``put``/``scan``)."""

    backend = "abstract"

    def __init__(self, uri: str, mode: str, durable: bool = True) -> None:
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        self.uri = uri
        self.mode = mode
        self.durable = durable
        self._pending: Pending | None = None
        self._write_lock = threading.RLock()
        self._closed = False
        self._writer: WriterLock | None = None  # set by backends that write files

    # ---- backend primitives --------------------------------------------------------
    @abstractmethod
    def _specs(self) -> dict[str, TableSpec]: ...
    @abstractmethod
    def _read_rows(self, spec: TableSpec, row_ids: np.ndarray, out: np.ndarray) -> None: ...
    @abstractmethod
    def _get(self, ns: str, keys: Sequence[bytes]) -> list[bytes | None]: ...
    @abstractmethod
    def _scan(self, ns: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...
    @abstractmethod
    def _namespaces(self) -> list[str]: ...
    @abstractmethod
    def _commit(self, pending: Pending) -> None: ...
    @abstractmethod
    def _verify(self, report: VerifyReport) -> None: ...
    @abstractmethod
    def _close(self) -> None: ...

    def _count(self, ns: str, prefix: bytes) -> int:
        return sum(1 for _ in self._scan(ns, prefix))

    def _bytes_on_disk(self) -> int | None:
        return None

    def _last_commit(self) -> int | None:
        return None

    def _format_version(self) -> int:
        """The on-disk format version of this store (what ``info`` reports)."""
        return STORE_FORMAT_VERSION

    # ---- what the table runtime asks of every store -----------------------------------
    def pinned_rows(self, table: str) -> np.ndarray | None:
        """The live rows of ``table`` when they sit in pinned host memory, else None.

        A CUDA device can read such rows in place. Only ``dram://`` opened with
        ``pinned=True`` has them.
        """
        return None

    @property
    def hit_rate(self) -> float | None:
        """Hits over requested rows of a row cache in front of this store (None: no cache)."""
        return None

    @property
    def in_place_tokens(self) -> int:
        """By default, steps of at most this many token positions have a CUDA device read
        :meth:`pinned_rows` in place; bigger steps are gathered by the host (and prefetched).

        Decoding-size steps for every store today: reading a 16K-token prefill step in place
        holds SMs on PCIe latency (``docs/table_speed.md``).
        """
        return IN_PLACE_TOKENS

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def readonly(self) -> bool:
        """True when opened with mode ``"r"``."""
        return self.mode == "r"

    def close(self) -> None:
        """Release files and locks; a transaction still open is rolled back."""
        if not self._closed:
            self._pending = None
            self._closed = True
            self._close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r}, mode={self.mode!r})"

    # ---- transactions -----------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: they commit together at exit, or not at all if it raises.

        A nested transaction is a savepoint: if its block raises, only its own writes are
        undone (the exception propagates; an outer block that catches it still commits the
        rest).
        """
        self._check_writable()
        with self._write_lock:
            if self._pending is not None:
                mark = self._pending.savepoint()
                try:
                    yield
                except BaseException:
                    if self._pending is not None:
                        self._pending.rollback_to(mark)
                    raise
                return
            self._pending = Pending()
            try:
                yield
                pending, self._pending = self._pending, None
                if not pending.empty():
                    self._commit_checked(pending)
            finally:
                self._pending = None

    def _stage(self) -> tuple[Pending, bool]:
        self._check_writable()
        if self._pending is not None:
            return self._pending, False
        return Pending(), True

    def _finish(self, pending: Pending, auto: bool) -> None:
        if auto and not pending.empty():
            with self._write_lock:
                self._commit_checked(pending)

    def _commit_checked(self, pending: Pending) -> None:
        """``_commit``, with OS errors (disk full, I/O) turned into store errors."""
        self._check_writable()
        try:
            self._commit(pending)
        except OSError as exc:
            raise os_store_error(self.uri, exc) from exc

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise StoreReadOnlyError(f"{self.uri} is open read-only (mode 'r')", path=self.uri)
        if self._writer is not None:
            self._writer.check_owner()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.uri} is closed", path=self.uri)

    # ---- tables -------------------------------------------------------------------------
    def tables(self) -> dict[str, TableSpec]:
        """Every table (including ones created in the open transaction)."""
        self._check_open()
        specs = dict(self._specs())
        if self._pending is not None:
            specs.update(self._pending.new_tables)
        return specs

    def table(self, name: str) -> TableSpec:
        """The spec of one table."""
        spec = self.tables().get(name)
        if spec is None:
            raise InputError(f"no table {name!r} in {self.uri}; tables: {sorted(self.tables())}")
        return spec

    def create_table(self, name: str, rows: int, dim: int, dtype: str = "float32") -> TableSpec:
        """Create a zero-filled table."""
        validate.check_name("table", name)
        validate.check_dtype(dtype)
        if not isinstance(rows, int) or rows < 0 or not isinstance(dim, int) or dim < 1:
            raise InputError(
                f"table {name!r} needs rows >= 0 and dim >= 1, got rows={rows}, dim={dim}"
            )
        if name in self.tables():
            raise InputError(f"table {name!r} already exists in {self.uri}")
        spec = TableSpec(name=name, rows=rows, dim=dim, dtype=dtype)  # type: ignore[arg-type]
        pending, auto = self._stage()
        pending.new_tables[name] = spec
        self._finish(pending, auto)
        return spec

    def gather(self, table: str, row_ids: Any, out: Any = None) -> Any:
        """Rows ``row_ids`` of ``table`` as (N, dim); fills and returns ``out`` if given.

        Duplicate ids are fine. bfloat16 rows come back as uint16 bits in numpy and as
        ``torch.bfloat16`` in a torch ``out``.
        """
        self._check_open()
        spec = self.table(table)
        ids = validate.check_row_ids(spec, row_ids)
        view = (
            np.empty((len(ids), spec.dim), dtype=spec.storage_dtype)
            if out is None
            else validate.output_view(spec, out, len(ids))
        )
        if len(ids):
            pending = self._pending
            if pending is not None and table in pending.new_tables:
                view[:] = 0
            else:
                self._read_rows(spec, ids, view)
            if pending is not None:
                pending.overlay_rows(table, ids, view)
        return view if out is None else out

    def scatter(self, table: str, row_ids: Any, values: Any) -> None:
        """Write rows; with duplicate ids the last one wins."""
        spec = self.table(table)
        ids = validate.check_row_ids(spec, row_ids)
        arr = validate.as_storage_array(spec, values, len(ids))
        pending, auto = self._stage()
        pending.scatter(table, ids, arr)
        self._finish(pending, auto)

    def fill(
        self,
        table: str,
        generator: Callable[[int, int], Any],
        chunk_rows: int = 65536,
        progress: bool = False,
    ) -> None:
        """Initialise every row from ``generator(start, stop) -> (stop-start, dim)``, in one commit."""
        spec = self.table(table)
        from engram_sdk.stores.progress import progress_bar

        with self.transaction(), progress_bar(progress, f"fill {table}", spec.nbytes) as bar:
            for start in range(0, spec.rows, chunk_rows):
                stop = min(spec.rows, start + chunk_rows)
                self.scatter(table, np.arange(start, stop, dtype=np.int64), generator(start, stop))
                bar((stop - start) * spec.row_bytes)

    # ---- records ---------------------------------------------------------------------
    def get(self, ns: str, key: bytes) -> bytes | None:
        """The value of ``key`` in namespace ``ns``, or None."""
        return self.get_many(ns, [key])[0]

    def get_many(self, ns: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` (None where missing)."""
        self._check_open()
        validate.check_name("namespace", ns)
        keys = [validate.check_key(k) for k in keys]
        staged = self._pending.records.get(ns, {}) if self._pending is not None else {}
        missing = [k for k in keys if k not in staged]
        found = dict(zip(missing, self._get(ns, missing), strict=True)) if missing else {}
        return [staged[k] if k in staged else found[k] for k in keys]

    def put(self, ns: str, key: bytes, value: bytes) -> None:
        """Set one record."""
        self.put_many(ns, [(key, value)])

    def put_many(self, ns: str, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Set many records in one commit."""
        validate.check_name("namespace", ns)
        checked = [(validate.check_key(k), validate.check_value(v)) for k, v in items]
        pending, auto = self._stage()
        pending.records.setdefault(ns, {}).update(checked)
        self._finish(pending, auto)

    def delete(self, ns: str, key: bytes) -> bool:
        """Delete one record; True if it existed."""
        return self.delete_many(ns, [key]) == 1

    def delete_many(self, ns: str, keys: Iterable[bytes]) -> int:
        """Delete records; returns how many existed."""
        validate.check_name("namespace", ns)
        keys = list(dict.fromkeys(validate.check_key(k) for k in keys))
        existed = sum(v is not None for v in self.get_many(ns, keys))
        pending, auto = self._stage()
        staged = pending.records.setdefault(ns, {})
        for k in keys:
            staged[k] = None
        self._finish(pending, auto)
        return existed

    def scan(self, ns: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Records whose key starts with ``prefix``, in key order."""
        self._check_open()
        validate.check_name("namespace", ns)
        committed = self._scan(ns, bytes(prefix)) if ns in self._namespaces() else iter(())
        if self._pending is not None:
            return self._pending.overlay_scan(ns, bytes(prefix), committed)
        return committed

    def count(self, ns: str, prefix: bytes = b"") -> int:
        """Number of records whose key starts with ``prefix``."""
        if self._pending is not None and ns in self._pending.records:
            return sum(1 for _ in self.scan(ns, prefix))
        self._check_open()
        validate.check_name("namespace", ns)
        return self._count(ns, bytes(prefix)) if ns in self._namespaces() else 0

    def namespaces(self) -> list[str]:
        """Record namespaces that hold or held records."""
        names = set(self._namespaces())
        if self._pending is not None:
            names |= set(self._pending.records)
        return sorted(names)

    def last_commit(self) -> int | None:
        """A number that changes with every commit this store can see (any process's), so a
        reader can skip rereading what did not change; None when the backend cannot tell, or
        while a transaction is open here (its staged writes are read too): reread then."""
        self._check_open()
        return None if self._pending is not None else self._last_commit()

    # ---- description ------------------------------------------------------------------
    def info(self) -> StoreInfo:
        """Tables, namespaces with record counts, bytes of rows and records, size on disk."""
        namespaces: dict[str, int] = {}
        record_bytes = 0
        for ns in self.namespaces():
            n = 0
            for key, value in self.scan(ns):
                n += 1
                record_bytes += len(key) + len(value)
            namespaces[ns] = n
        tables = list(self.tables().values())
        return StoreInfo(
            uri=self.uri,
            backend=self.backend,
            mode=self.mode,
            tables=tables,
            namespaces=namespaces,
            table_bytes=sum(t.nbytes for t in tables),
            record_bytes=record_bytes,
            bytes_on_disk=self._bytes_on_disk(),
            format_version=self._format_version(),
        )

    def verify(self) -> VerifyReport:
        """Check every checksum and structure; problems name the file and offset."""
        self._check_open()
        report = VerifyReport(uri=self.uri)
        self._verify(report)
        return report
