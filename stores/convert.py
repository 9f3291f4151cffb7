"""Copy any store into any other, then verify the copy row by row and record by record."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from engram_sdk.stores.base import Store
from engram_sdk.stores.errors import StoreCorruptError
from engram_sdk.stores.progress import progress_bar

CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class CopyStats:
    """What :func:`copy_store` copied."""

    table_bytes: int
    records: int
    record_bytes: int

    @property
    def bytes(self) -> int:
        """Row bytes plus record key and value bytes."""
        return self.table_bytes + self.record_bytes


def copy_store(
    src: Store, dst: Store, *, progress: bool = False, verify: bool = False
) -> CopyStats:
    """Copy every table and namespace of ``src`` into ``dst`` in one commit."""
    specs = src.tables()
    total = sum(s.nbytes for s in specs.values())
    copied = records = record_bytes = 0
    with dst.transaction(), progress_bar(progress, f"copy {src.uri} → {dst.uri}", total) as bar:
        for name, spec in specs.items():
            if name not in dst.tables():
                dst.create_table(name, spec.rows, spec.dim, spec.dtype)
            step = max(1, CHUNK_BYTES // spec.row_bytes)
            for start in range(0, spec.rows, step):
                ids = np.arange(start, min(spec.rows, start + step), dtype=np.int64)
                dst.scatter(name, ids, src.gather(name, ids))
                copied += len(ids) * spec.row_bytes
                bar(len(ids) * spec.row_bytes)
        for ns in src.namespaces():
            batch: list[tuple[bytes, bytes]] = []
            for item in src.scan(ns):
                batch.append(item)
                records += 1
                record_bytes += len(item[0]) + len(item[1])
                if len(batch) >= 4096:
                    dst.put_many(ns, batch)
                    batch = []
            if batch:
                dst.put_many(ns, batch)
    if verify:
        verify_copy(src, dst)
    return CopyStats(table_bytes=copied, records=records, record_bytes=record_bytes)


def verify_copy(src: Store, dst: Store) -> None:
    """Raise :class:`StoreCorruptError` unless ``dst`` holds exactly what ``src`` holds."""
    report = dst.verify()
    if not report.ok:
        raise StoreCorruptError(
            f"copy in {dst.uri} fails verification: {report.problems[0].message}",
            path=report.problems[0].file,
            offset=report.problems[0].offset,
        )
    for name, spec in src.tables().items():
        step = max(1, CHUNK_BYTES // spec.row_bytes)
        for start in range(0, spec.rows, step):
            ids = np.arange(start, min(spec.rows, start + step), dtype=np.int64)
            if not np.array_equal(src.gather(name, ids), dst.gather(name, ids)):
                raise StoreCorruptError(
                    f"table {name!r} differs after copy near row {start}", path=dst.uri
                )
    for ns in src.namespaces():
        if list(src.scan(ns)) != list(dst.scan(ns)):
            raise StoreCorruptError(f"namespace {ns!r} differs after copy", path=dst.uri)
