"""Where an Engram layer's embedding rows come from, as the layer sees it: one ``lookup``.

A table is an ``nn.Module`` with ``rows`` x ``dim`` rows indexed by flat addresses. The
layer never prepares, fetches or waits: rows that live in a store are the business of the
table runtime (:mod:`engram_sdk.table_runtime`), which swaps its own tables in from outside.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from engram_sdk.errors import InputError


@runtime_checkable
class EngramTable(Protocol):
    """The rows of one Engram layer: ``rows`` x ``dim``, indexed by flat addresses."""

    rows: int
    dim: int

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Rows for the addresses: (B, T, H) int → (B, T, H, dim) on the compute device."""


class EmbeddingTable(nn.Module):
    """The default table: a trainable ``nn.Embedding`` living with the model."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.rows, self.dim = rows, dim
        self.embedding = nn.Embedding(rows, dim)

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Embedding rows of the addresses."""
        return self.embedding(flat_addresses.long())


class MissingTable(nn.Module):
    """A table built without rows (no memory): a store-backed one must replace it."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.rows, self.dim = rows, dim

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Always fails: there are no rows."""
        raise InputError(
            f"this Engram table ({self.rows} x {self.dim}) was built without rows "
            "(build_model(..., engram_tables=False)); serve it from a store: "
            "attach_tables(model, uri, export=False)"
        )
