"""Where an Engram layer's embedding rows come from.

Every address of a forward pass is known from the input ids before the first layer runs,
so the model calls ``prepare`` on every layer's table first (a store-backed table starts
fetching rows then) and ``lookup`` only when the layer needs them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class EngramTable(Protocol):
    """The rows of one Engram layer: ``rows`` x ``dim``, indexed by flat addresses."""

    rows: int
    dim: int

    def prepare(self, flat_addresses: torch.Tensor) -> None:
        """Announce the addresses (B, T, H) the next ``lookup`` will ask for."""

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Rows for the addresses: (B, T, H) int → (B, T, H, dim) on the compute device."""


class EmbeddingTable(nn.Module):
    """The default table: a trainable ``nn.Embedding`` living with the model."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.rows, self.dim = rows, dim
        self.embedding = nn.Embedding(rows, dim)

    def prepare(self, flat_addresses: torch.Tensor) -> None:
        """Nothing to fetch: the rows are already on the device."""

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Embedding rows of the addresses."""
        return self.embedding(flat_addresses.long())
