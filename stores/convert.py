"""Copy any store into any other, then verify the copy row by row and record by record."""

from __future__ import annotations

import numpy as np
from engram_sdk.stores.base import Store
from engram_sdk.stores.errors import StoreCorruptError
from engram_sdk.stores.progress import progress_bar

CHUNK_BYTES = 32 << 20


def copy_store(src: Store, dst: Store, progress: bool = False, verify: bool = False) -> int:
    """Copy every table and namespace of ``src`` into ``dst`` in one commit; returns bytes copied."""
    specs = src.tables()
    total = sum(s.nbytes for s in specs.values())
    copied = 0
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
                if len(batch) >= 4096:
                    dst.put_many(ns, batch)
                    batch = []
            if batch:
                dst.put_many(ns, batch)
    if verify:
        verify_copy(src, dst)
    return copied


def verify_copy(src: Store, dst: Store) -> None:
    """Raise :class:`StoreCorruptError` unless ``dst`` holds exactly what ``src`` holds."""
    report = dst.verify()
    if not report.ok:
        raise StoreCorruptError(
            f"copy in {dst.uri} fails verification: {report.problems[0].message}"
        )
    for name, spec in src.tables().items():
        step = max(1, CHUNK_BYTES // spec.row_bytes)
        for start in range(0, spec.rows, step):
            ids = np.arange(start, min(spec.rows, start + step), dtype=np.int64)
            if not np.array_equal(src.gather(name, ids), dst.gather(name, ids)):
                raise StoreCorruptError(f"table {name!r} differs after copy near row {start}")
    for ns in src.namespaces():
        if list(src.scan(ns)) != list(dst.scan(ns)):
            raise StoreCorruptError(f"namespace {ns!r} differs after copy")
