"""Training Engram tables that live in a store.

``TrainableStoreTable`` (``attach_tables(..., trainable=True)``) serves rows like
:class:`StoreTable`; when autograd is on, the rows read by each lookup become a leaf tensor,
so backward leaves one gradient per row read (the expansion ``rows[inverse]`` sums
duplicates; without deduplication the optimizer sums them). ``StoreTableOptimizer.step()``
then updates exactly those rows in the store with row-wise Adagrad (one float32 accumulator
per row, kept in the store as table ``<name>.adagrad``) or plain SGD, inside one store
transaction, and patches rows that an already started ``prefetch`` holds so the next step
never reads a stale row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from engram_sdk.errors import InputError
from engram_sdk.table_runtime.store_table import StoreTable


class TrainableStoreTable(StoreTable):
    """A :class:`StoreTable` whose looked-up rows receive gradients (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # (row ids read, their leaf)

    def reads_in_place(self, tokens: int) -> bool:
        """Never while autograd is on: rows that get gradients are fetched (a leaf per fetch)."""
        return not torch.is_grad_enabled() and super().reads_in_place(tokens)

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Rows (B, T, H, D); with grad enabled, gradients collect per row read."""
        if not torch.is_grad_enabled():
            return super().lookup(flat_addresses)
        got = self._take(flat_addresses)
        leaf = got.rows.float().detach().requires_grad_(True)
        self.pending.append((got.ids, leaf))
        rows = leaf if got.inverse is None else leaf[got.inverse]
        return rows.to(got.rows.dtype).view(*flat_addresses.shape, self.dim)


class StoreTableOptimizer:
    """Updates the rows of store-served Engram tables that received gradients."""

    def __init__(
        self,
        tables: Iterable[StoreTable] | Mapping[int, StoreTable],
        *,
        lr: float = 0.01,
        kind: str = "adagrad",
        eps: float = 1e-8,
    ) -> None:
        if kind not in ("adagrad", "sgd"):
            raise InputError(f"optimizer kind {kind!r}: expected 'adagrad' or 'sgd'")
        tables = tables.values() if isinstance(tables, Mapping) else tables
        self.tables = [t for t in tables if isinstance(t, TrainableStoreTable)]
        if not self.tables:
            raise InputError("StoreTableOptimizer needs TrainableStoreTable tables")
        self.lr, self.kind, self.eps = lr, kind, eps
        for t in self.tables:
            state = f"{t.name}.adagrad"
            if kind == "adagrad" and state not in t.store.tables():
                t.store.create_table(state, t.rows, 1, "float32")

    def zero_grad(self) -> None:
        """Forget gradients collected since the last step."""
        for t in self.tables:
            t.pending.clear()

    def step(self) -> int:
        """Apply the update to every row with a gradient; returns the number of rows updated."""
        updated = 0
        for t in self.tables:  # no prefetch reads the stores while this step writes them
            t.prefetched_rows()
        for t in self.tables:
            parts = [(ids, leaf.grad) for ids, leaf in t.pending if leaf.grad is not None]
            t.pending.clear()
            if not parts:
                continue
            ids = torch.cat([p[0] for p in parts])
            grads = torch.cat([p[1].detach().float().cpu() for p in parts])
            uniq, inv = torch.unique(ids, return_inverse=True)
            grad = torch.zeros((len(uniq), t.dim)).index_add_(0, inv, grads)
            rows = uniq.numpy()
            weight = torch.from_numpy(np.asarray(t.store.gather(t.name, rows), np.float32))
            with t.store.transaction():
                if self.kind == "adagrad":
                    state = f"{t.name}.adagrad"
                    acc = torch.from_numpy(np.asarray(t.store.gather(state, rows), np.float32))
                    acc += grad.square().mean(1, keepdim=True)
                    weight -= self.lr * grad / (acc.sqrt() + self.eps)
                    t.store.scatter(state, rows, acc.numpy())
                else:
                    weight -= self.lr * grad
                t.store.scatter(t.name, rows, weight.numpy())
            if t.hot is not None:  # the store now holds the rows: the next gather rereads them
                t.hot.invalidate(rows)
            self._patch_prefetches(t, uniq, weight)
            updated += len(uniq)
        return updated

    @staticmethod
    def _patch_prefetches(t: TrainableStoreTable, ids: torch.Tensor, weight: torch.Tensor) -> None:
        for got in t.prefetched_rows():
            if got.event is not None:
                torch.cuda.current_stream(t.device).wait_event(got.event)
            hit = torch.isin(got.ids, ids)
            if hit.any():
                where = torch.searchsorted(ids, got.ids[hit])
                got.rows[hit.to(got.rows.device)] = weight[where].to(
                    got.rows.device, got.rows.dtype
                )
