"""Where an Engram layer's embedding rows come from.

Every address of a forward pass is known from the input ids before the first layer runs,
so the model calls ``prepare`` on every layer's table first (a store-backed table starts
fetching rows then) and ``lookup`` only when the layer needs them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from engram_sdk.errors import InputError

Finish = Callable[[], dict[int, torch.Tensor]]


class BatchAddresses:
    """Every Engram layer's addresses for one batch of host ids, hashed when first needed.

    The model hands store-backed tables ``layer(n)`` instead of a tensor. ``launch()`` starts
    the hashing on the calling thread and returns a function that finishes it: with a CUDA
    model, launching enqueues the hash kernels and the copy back on a side stream and
    finishing waits for them; on CPU, launching does nothing and finishing hashes. Tables
    call :meth:`start` on the model's thread and :meth:`result` on their fetch thread, so the
    thread that launches the model's kernels never hashes nor waits. Thread-safe.
    """

    def __init__(self, launch: Callable[[], Finish], tokens: int) -> None:
        self.tokens = tokens  # how many token positions the batch holds
        self._launch: Callable[[], Finish] | None = launch
        self._finish: Finish | None = None
        self._result: dict[int, torch.Tensor] | None = None
        self._launch_lock = threading.Lock()
        self._finish_lock = threading.Lock()  # separate: start() never waits for a finish

    def start(self) -> None:
        """Launch the hashing if nobody has yet (returns at once if somebody has)."""
        if self._launch is None:
            return
        with self._launch_lock:
            if self._launch is not None:
                self._finish, self._launch = self._launch(), None

    def result(self) -> dict[int, torch.Tensor]:
        """Flat addresses (B, T, H) per Engram layer, on the host."""
        self.start()
        with self._finish_lock:
            if self._result is None:
                assert self._finish is not None
                self._result, self._finish = self._finish(), None
            return self._result

    def layer(self, layer_id: int) -> LayerAddresses:
        """The addresses of one layer, still unresolved."""
        return LayerAddresses(self, layer_id)


class LayerAddresses:
    """One layer's share of a :class:`BatchAddresses` (resolved with :meth:`result`)."""

    def __init__(self, batch: BatchAddresses, layer_id: int) -> None:
        self.batch, self.layer_id = batch, layer_id

    def result(self) -> torch.Tensor:
        """Flat addresses (B, T, H) of this layer."""
        return self.batch.result()[self.layer_id]

    def same_batch(self, other: object) -> bool:
        """True for the same layer of the same batch object."""
        return (
            isinstance(other, LayerAddresses)
            and other.batch is self.batch
            and other.layer_id == self.layer_id
        )


@runtime_checkable
class EngramTable(Protocol):
    """The rows of one Engram layer: ``rows`` x ``dim``, indexed by flat addresses."""

    rows: int
    dim: int

    def prepare(self, flat_addresses: torch.Tensor | LayerAddresses) -> None:
        """Announce the addresses (B, T, H) the next ``lookup`` will ask for.

        Tables with ``host_addresses = True`` may get a :class:`LayerAddresses` (hashed later,
        off the model's thread) instead of a tensor.
        """

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Rows for the addresses: (B, T, H) int → (B, T, H, dim) on the compute device."""


_UNALLOCATED: ContextVar[bool] = ContextVar("engram_tables_unallocated", default=False)


@contextmanager
def tables_unallocated() -> Iterator[None]:
    """Build Engram layers without allocating their tables (rows that will live in a store)."""
    token = _UNALLOCATED.set(True)
    try:
        yield
    finally:
        _UNALLOCATED.reset(token)


class MissingTable:
    """Stands in for a table built without rows until a store-backed one replaces it."""

    def __init__(self, rows: int, dim: int) -> None:
        self.rows, self.dim = rows, dim

    def prepare(self, flat_addresses: torch.Tensor | LayerAddresses) -> None:
        """Nothing to prepare."""

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Always fails: there are no rows."""
        raise InputError(
            f"this Engram table ({self.rows} x {self.dim}) was built without rows "
            "(build_model(..., engram_tables=False)); serve it from a store: "
            "attach_store_tables(model, uri, export=False)"
        )


class EmbeddingTable(nn.Module):
    """The default table: a trainable ``nn.Embedding`` living with the model."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.rows, self.dim = rows, dim
        device = "meta" if _UNALLOCATED.get() else None
        self.embedding = nn.Embedding(rows, dim, device=device)

    def prepare(self, flat_addresses: torch.Tensor | LayerAddresses) -> None:
        """Nothing to fetch: the rows are already on the device."""

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Embedding rows of the addresses."""
        return self.embedding(flat_addresses.long())
