"""``dram://``: tables and records in process memory; optionally loaded from / saved to a folder.

``dram:///folder`` loads the folder (a ``shards://`` store) at open and writes it back on
every commit, so it survives the process; plain ``dram://`` is throw-away. A writer holds
the folder's ``shards://`` store (and so its writer lock) open for its whole life; a commit
that fails to reach the folder (disk full, I/O error) is undone in memory too.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from engram_sdk.stores.base import Store
from engram_sdk.stores.blocks import take_rows
from engram_sdk.stores.errors import StoreError
from engram_sdk.stores.models import TableSpec, VerifyReport
from engram_sdk.stores.pending import Pending
from engram_sdk.stores.shards import ShardStore


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key above every key starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class DramStore(Store):
    """In-memory backend; ``pinned=True`` keeps tables in pinned torch memory for fast H2D."""

    backend = "dram"

    def __init__(
        self,
        uri: str,
        mode: str = "a",
        durable: bool = True,
        folder: Path | None = None,
        pinned: bool = False,
    ) -> None:
        super().__init__(uri, mode, durable)
        self.folder = folder
        self.pinned = pinned
        self._tables: dict[str, tuple[TableSpec, np.ndarray]] = {}
        self._records: dict[str, dict[bytes, bytes]] = {}
        self._sorted: dict[str, list[bytes]] = {}
        self._disk: ShardStore | None = None
        if folder is None:
            return
        if mode == "r":
            if not (folder / "manifest.json").is_file():
                raise StoreError(
                    f"no dram store here: {folder / 'manifest.json'} does not exist",
                    path=folder / "manifest.json",
                )
            with ShardStore(f"shards://{folder}", "r", folder=folder) as src:
                self._load(src)
            return
        self._disk = ShardStore(f"shards://{folder}", mode, folder=folder, durable=durable)
        self._writer = self._disk._writer
        try:
            self._load(self._disk)
        except BaseException:
            self._disk.close()
            raise

    def _alloc(self, spec: TableSpec) -> np.ndarray:
        if self.pinned:
            import torch

            t = torch.zeros((spec.rows, spec.dim), dtype=spec.torch_dtype()).pin_memory()
            if spec.dtype == "bfloat16":
                t = t.view(torch.int16)
            return t.numpy().view(spec.storage_dtype)
        return np.zeros((spec.rows, spec.dim), dtype=spec.storage_dtype)

    def _load(self, src: ShardStore) -> None:
        for name, spec in src.tables().items():
            arr = self._alloc(spec)
            for start in range(0, spec.rows, 1 << 16):
                ids = np.arange(start, min(spec.rows, start + (1 << 16)), dtype=np.int64)
                src.gather(name, ids, out=arr[start : start + len(ids)])
            self._tables[name] = (spec, arr)
        for ns in src.namespaces():
            self._records[ns] = dict(src.scan(ns))
            self._sorted[ns] = sorted(self._records[ns])

    def _snapshot(self) -> Pending:
        snapshot = Pending()
        for name, (spec, arr) in self._tables.items():
            snapshot.new_tables[name] = spec
            if spec.rows:
                snapshot.rows[name] = [(np.arange(spec.rows, dtype=np.int64), arr)]
        snapshot.records = {ns: dict(records) for ns, records in self._records.items()}
        return snapshot

    def save(self, folder: str | Path) -> None:
        """Write everything to ``folder`` as a ``shards://`` store, replacing it atomically."""
        folder = Path(folder)
        if self._disk is not None and folder.absolute() == self._disk.folder:
            self._disk.replace_all(self._snapshot())
            return
        with ShardStore(f"shards://{folder}", "a", folder=folder, durable=self.durable) as dst:
            dst.replace_all(self._snapshot())

    def pinned_rows(self, table: str) -> np.ndarray | None:
        """The live rows of ``table`` when they sit in pinned memory (else None).

        A CUDA device can read pinned rows in place; the array is only valid while this
        store holds the table (a new table of the same name gets a new array).
        """
        self._check_open()
        self.table(table)
        return self._tables[table][1] if self.pinned else None

    # ---- primitives ----------------------------------------------------------------------
    def _specs(self) -> dict[str, TableSpec]:
        return {name: spec for name, (spec, _) in self._tables.items()}

    def _read_rows(self, spec: TableSpec, row_ids: np.ndarray, out: np.ndarray) -> None:
        take_rows(self._tables[spec.name][1], row_ids, out)

    def _get(self, ns: str, keys: Sequence[bytes]) -> list[bytes | None]:
        records = self._records.get(ns, {})
        return [records.get(k) for k in keys]

    def _scan(self, ns: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        keys = self._sorted.get(ns, [])
        records = self._records.get(ns, {})
        i = bisect.bisect_left(keys, prefix)
        end = prefix_end(prefix)
        j = len(keys) if end is None else bisect.bisect_left(keys, end)
        for k in keys[i:j]:
            v = records.get(k)
            if v is not None:
                yield k, v

    def _namespaces(self) -> list[str]:
        return sorted(self._records)

    def _commit(self, pending: Pending) -> None:
        undo = self._apply(pending)
        if self._disk is None:
            return
        try:
            self._disk.replace_all(self._snapshot())
        except BaseException:
            undo()
            raise

    def _apply(self, pending: Pending) -> Callable[[], None]:
        """Apply ``pending`` in memory; returns the function that takes it back."""
        created = [name for name in pending.new_tables if name not in self._tables]
        old_rows: list[tuple[str, np.ndarray, np.ndarray]] = []
        old_records: dict[str, dict[bytes, bytes | None]] = {}
        for name, spec in pending.new_tables.items():
            self._tables[name] = (spec, self._alloc(spec))
        for name in pending.rows:
            ids, values = pending.final_rows(name)  # type: ignore[misc]
            arr = self._tables[name][1]
            if name not in created:
                old_rows.append((name, ids, arr[ids].copy()))
            arr[ids] = values
        for ns, staged in pending.records.items():
            records = self._records.setdefault(ns, {})
            old_records[ns] = {k: records.get(k) for k in staged}
            self._apply_records(ns, staged)

        def undo() -> None:
            for name in created:
                del self._tables[name]
            for name, ids, rows in old_rows:
                self._tables[name][1][ids] = rows
            for ns, old in old_records.items():
                records = self._records[ns]
                for k, v in old.items():
                    if v is None:
                        records.pop(k, None)
                    else:
                        records[k] = v
                self._sorted[ns] = sorted(records)

        return undo

    def _apply_records(self, ns: str, staged: dict[bytes, bytes | None]) -> None:
        records = self._records[ns]
        order = self._sorted.setdefault(ns, [])
        added = [k for k, v in staged.items() if v is not None and k not in records]
        removed = [k for k, v in staged.items() if v is None and k in records]
        for k, v in staged.items():
            if v is None:
                records.pop(k, None)
            else:
                records[k] = v
        if len(added) + len(removed) > 64:
            self._sorted[ns] = sorted(records)
        else:
            for k in added:
                bisect.insort(order, k)
            for k in removed:
                del order[bisect.bisect_left(order, k)]

    def _verify(self, report: VerifyReport) -> None:
        report.checked_bytes = sum(arr.nbytes for _, arr in self._tables.values())
        report.checked_records = sum(len(r) for r in self._records.values())
        if self.folder is None:
            return
        if self._disk is not None:
            on_disk = self._disk.verify()
        else:
            with ShardStore(f"shards://{self.folder}", "r", folder=self.folder) as src:
                on_disk = src.verify()
        report.checked_files += on_disk.checked_files
        report.problems.extend(on_disk.problems)

    def _bytes_on_disk(self) -> int | None:
        return None if self._disk is None else self._disk._bytes_on_disk()

    def _close(self) -> None:
        self._tables.clear()
        self._records.clear()
        if self._disk is not None:
            self._disk.close()
