"""``LaidOutStore``: a store whose frequency-laid-out tables read as their original tables.

For every table ``T`` with a row layout kept in the wrapped store (see
:mod:`engram_sdk.stores.row_layout`), ``gather("T", ids)`` reads ``T.by_frequency`` at the
layout's slots, so any reader (the table runtime included) gets the original rows with the
laid-out locality, unchanged. Tables without a layout pass through. Read-only: write through
the wrapped store and lay the table out again. Closing it closes the wrapped store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from engram_sdk.stores.base import Store
from engram_sdk.stores.errors import StoreReadOnlyError
from engram_sdk.stores.models import TableSpec, VerifyReport
from engram_sdk.stores.pending import Pending
from engram_sdk.stores.row_layout import (
    IDS_SUFFIX,
    LAYOUT_NAMESPACE,
    RowLayout,
    laid_out_name,
    load_layout,
)


class LaidOutStore(Store):
    """Read-only view of ``store`` serving laid-out tables under their original names."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.uri, "r", store.durable)
        self.store = store
        self.backend = store.backend
        self.layouts: dict[str, RowLayout] = {}
        for key, _ in store.scan(LAYOUT_NAMESPACE):
            table = key.decode()
            layout = load_layout(store, table)
            if layout is not None:
                self.layouts[table] = layout

    def __repr__(self) -> str:
        return f"LaidOutStore({self.store!r}, tables={sorted(self.layouts)})"

    def pinned_rows(self, table: str) -> np.ndarray | None:
        """Never in place: rows must go through the layout."""
        return None

    def _specs(self) -> dict[str, TableSpec]:
        specs = dict(self.store.tables())
        for table in self.layouts:
            inner = specs.pop(laid_out_name(table))
            specs.pop(laid_out_name(table) + IDS_SUFFIX, None)
            specs[table] = inner.model_copy(update={"name": table})
        return specs

    def _read_rows(self, spec: TableSpec, row_ids: np.ndarray, out: np.ndarray) -> None:
        layout = self.layouts.get(spec.name)
        if layout is None:
            self.store.gather(spec.name, row_ids, out=out)
        else:
            self.store.gather(laid_out_name(spec.name), layout.slots(row_ids), out=out)

    def _get(self, ns: str, keys: Sequence[bytes]) -> list[bytes | None]:
        return self.store.get_many(ns, keys)

    def _scan(self, ns: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.store.scan(ns, prefix)

    def _count(self, ns: str, prefix: bytes) -> int:
        return self.store.count(ns, prefix)

    def _namespaces(self) -> list[str]:
        return self.store.namespaces()

    def _commit(self, pending: Pending) -> None:
        raise StoreReadOnlyError(f"{self.uri}: a LaidOutStore is read-only", path=self.uri)

    def _verify(self, report: VerifyReport) -> None:
        inner = self.store.verify()
        report.checked_files, report.checked_bytes = inner.checked_files, inner.checked_bytes
        report.checked_records, report.problems = inner.checked_records, inner.problems

    def _format_version(self) -> int:
        return self.store._format_version()

    def _bytes_on_disk(self) -> int | None:
        return self.store._bytes_on_disk()

    def _close(self) -> None:
        self.store.close()
