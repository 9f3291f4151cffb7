"""``LaidOutStore``: a store whose frequency-laid-out tables read as their original tables.

For every table ``T`` with a row layout kept in the wrapped store (see
:mod:`engram_sdk.stores.row_layout`), ``gather("T", ids)`` reads ``T.by_frequency`` at the
layout's slots, so any reader (the table runtime included) gets the original rows with the
laid-out locality, unchanged. Tables without a layout pass through. Read-only: write through
the wrapped store and lay the table out again. Closing it closes the wrapped store.
"""

from __future__ import annotations

import numpy as np
from engram_sdk.stores.base import Store
from engram_sdk.stores.models import TableSpec
from engram_sdk.stores.row_layout import (
    IDS_SUFFIX,
    LAYOUT_NAMESPACE,
    RowLayout,
    laid_out_name,
    load_layout,
)
from engram_sdk.stores.wrapping import WrappingStore


class LaidOutStore(WrappingStore):
    """Read-only view of ``store`` serving laid-out tables under their original names."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, "r")
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
