"""An Engram table whose rows are split across ranks.

Each rank holds a contiguous block of rows (``torch.chunk`` rule, so uneven row counts and
ranks with no rows are fine) as the local shard of a ``DTensor`` with ``Shard(0)``, which is
what lets ``torch.distributed.checkpoint`` reshard a saved table at another world size. A
lookup deduplicates the rank's addresses, sends each unique id to its owner, gets the rows
back (two ``all_to_all_single`` calls: counts, then ids; a third returns the rows), and the
backward sends the row gradients back to their owners the same way.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Shard, distribute_tensor

from engram_sdk.distributed.comm import CommStats, Exchange, chunk_bounds, chunk_size


class _ShardHolder(nn.Module):
    """Holds the sharded ``weight`` under the same state-dict name as ``EmbeddingTable``."""

    def __init__(self, weight: DTensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)


class ShardedEngramTable(nn.Module):
    """A row-sharded Engram table (rows ``rows`` x ``dim``) serving every rank's lookups.

    ``grad_scale`` multiplies the row gradients a rank sends back; the default
    ``1 / world`` matches data parallelism with a loss averaged over ranks (as FSDP does).
    """

    def __init__(
        self, full_weight: torch.Tensor, mesh: DeviceMesh, *, grad_scale: float | None = None
    ) -> None:
        super().__init__()
        if mesh.ndim != 1:
            raise ValueError(f"ShardedEngramTable needs a 1-D mesh, got {mesh.ndim} dims")
        self.rows, self.dim = full_weight.shape
        self.mesh = mesh
        self.group = mesh.get_group()
        self.world, self.rank = dist.get_world_size(self.group), dist.get_rank(self.group)
        self.chunk = chunk_size(self.rows, self.world)
        self.start, self.stop = chunk_bounds(self.rows, self.world, self.rank)
        self.embedding = _ShardHolder(distribute_tensor(full_weight.detach(), mesh, [Shard(0)]))
        self.grad_scale = 1.0 / self.world if grad_scale is None else grad_scale
        self.stats = CommStats()
        self._exchange = Exchange(self.group, self.stats)

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Rows for addresses (B, T, H) → (B, T, H, dim); every rank must call it together."""
        if self.world == 1:  # the whole table is here
            return self.embedding.weight.to_local()[flat_addresses.long()]
        ids = flat_addresses.reshape(-1).long()
        unique, inverse = torch.unique(ids, sorted=True, return_inverse=True)
        self.stats.ids_requested += ids.numel()
        self.stats.ids_sent += unique.numel()
        owner = torch.div(unique, self.chunk, rounding_mode="floor")
        send_splits = torch.bincount(owner, minlength=self.world)
        recv_splits = self._exchange.counts(send_splits)
        send_list, recv_list = send_splits.tolist(), recv_splits.tolist()
        wanted = self._exchange.ids(unique, send_list, recv_list)  # ids others want from me
        local = self.embedding.weight.to_local()
        served = local[wanted - self.start]
        rows = self._exchange.rows(served, recv_list, send_list)  # (unique, dim), in order
        if rows.requires_grad and self.grad_scale != 1.0:
            rows.register_hook(lambda g: g * self.grad_scale)
        return rows[inverse].view(*flat_addresses.shape, self.dim)

    def full_weight(self) -> torch.Tensor:
        """The whole table, gathered on every rank (for checks and conversion)."""
        return self.embedding.weight.full_tensor()
