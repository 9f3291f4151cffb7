"""Collectives of the distributed path, timed and counted.

Every exchange goes through :class:`Exchange`, which keeps a :class:`CommStats`: ids sent
against unique ids, bytes on the wire and seconds spent in collectives, exposed like the
table runtime's prefetch stats. Row ownership follows ``torch.chunk`` (the rule DTensor's
``Shard(0)`` uses): rank ``r`` owns rows ``[r * c, (r + 1) * c)`` with ``c = ceil(rows / W)``,
so the last ranks may own fewer rows, or none.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist


@dataclass
class CommStats:
    """Counters of one sharded component (a table or an expert-parallel MoE)."""

    ids_requested: int = 0  # ids (or token slots) before deduplication
    ids_sent: int = 0  # ids (or tokens) actually sent after deduplication
    bytes_sent: int = 0  # payload bytes this rank put on the wire (forward and backward)
    collectives: int = 0
    seconds: float = 0.0  # wall time inside collectives on this rank

    @property
    def dedup_ratio(self) -> float:
        """Requested over sent (1.0 when nothing was deduplicated)."""
        return self.ids_requested / self.ids_sent if self.ids_sent else 1.0

    def as_dict(self) -> dict[str, float]:
        """Plain numbers, ``dedup_ratio`` included."""
        return {**asdict(self), "dedup_ratio": self.dedup_ratio}

    def reset(self) -> None:
        """Zero every counter."""
        self.__init__()


def chunk_size(rows: int, world: int) -> int:
    """Rows per rank under ``torch.chunk`` (the last ranks may hold fewer)."""
    return -(-rows // world)


def chunk_bounds(rows: int, world: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of the rows ``rank`` owns."""
    c = chunk_size(rows, world)
    return min(rank * c, rows), min((rank + 1) * c, rows)


class Exchange:
    """``all_to_all_single`` over one process group, timed into a :class:`CommStats`."""

    def __init__(self, group: dist.ProcessGroup | None, stats: CommStats) -> None:
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.stats = stats

    def counts(
        self,
        send: torch.Tensor,
        recv_splits: list[int] | None = None,
        send_splits: list[int] | None = None,
    ) -> torch.Tensor:
        """Exchange int64 counts (no autograd): every rank sends ``send`` split per peer."""
        n = sum(recv_splits) if recv_splits is not None else send.numel()
        out = torch.empty(n, dtype=send.dtype, device=send.device)
        self._timed(
            lambda: dist.all_to_all_single(
                out, send.contiguous(), recv_splits, send_splits, group=self.group
            )
        )
        return out

    def ids(
        self, send: torch.Tensor, send_splits: list[int], recv_splits: list[int]
    ) -> torch.Tensor:
        """Exchange ids (no autograd)."""
        out = torch.empty(sum(recv_splits), dtype=send.dtype, device=send.device)
        self._timed(
            lambda: dist.all_to_all_single(
                out, send.contiguous(), recv_splits, send_splits, group=self.group
            )
        )
        self.stats.bytes_sent += send.numel() * send.element_size()
        return out

    def rows(
        self, send: torch.Tensor, send_splits: list[int], recv_splits: list[int]
    ) -> torch.Tensor:
        """Exchange rows with autograd: the backward sends the gradients the reverse way."""
        out = send.new_empty((sum(recv_splits), *send.shape[1:]))
        start = time.perf_counter()
        result = _RowExchange.apply(send.contiguous(), out, send_splits, recv_splits, self)
        self._count(time.perf_counter() - start, send)
        return result

    def _timed(self, fn) -> None:
        start = time.perf_counter()
        fn()
        self.stats.collectives += 1
        self.stats.seconds += time.perf_counter() - start

    def _count(self, seconds: float, payload: torch.Tensor) -> None:
        self.stats.collectives += 1
        self.stats.seconds += seconds
        self.stats.bytes_sent += payload.numel() * payload.element_size()


class _RowExchange(torch.autograd.Function):
    """all_to_all of rows whose backward is the reverse all_to_all, counted in the stats."""

    @staticmethod
    def forward(ctx, send, out, send_splits, recv_splits, exchange):  # type: ignore[override]
        ctx.splits, ctx.exchange = (send_splits, recv_splits), exchange
        dist.all_to_all_single(out, send, recv_splits, send_splits, group=exchange.group)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        send_splits, recv_splits = ctx.splits
        exchange: Exchange = ctx.exchange
        grad = grad.contiguous()
        back = grad.new_empty((sum(send_splits), *grad.shape[1:]))
        start = time.perf_counter()
        dist.all_to_all_single(back, grad, send_splits, recv_splits, group=exchange.group)
        exchange._count(time.perf_counter() - start, grad)
        return back, None, None, None, None


__all__ = ["CommStats", "Exchange", "chunk_bounds", "chunk_size"]
