"""Expert parallelism for DeepSeekMoE: each rank holds a block of the routed experts.

The router and the shared experts stay replicated (data parallel); the stacked routed
expert weights become ``DTensor`` shards (``Shard(0)`` over experts). A forward routes
locally, then does the standard exchange: token counts per (source, expert) first, then the
tokens (sorted by expert, so each destination gets one contiguous slice), runs its local
experts on what it received, and sends the outputs back by the reverse exchange. Experts
that receive no tokens, and ranks that own no experts, are fine.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Shard, distribute_tensor

from engram_sdk.distributed.comm import CommStats, Exchange, chunk_bounds, chunk_size
from engram_sdk.model.moe import MoE


class ExpertParallelMoE(MoE):
    """A :class:`MoE` whose routed experts are spread over the ranks of ``mesh``.

    Built from an existing ``MoE`` (its gate, shared experts and weights are adopted, under
    the same state-dict names). ``grad_scale`` scales the expert gradients a rank sends back
    (``1 / world``: a loss averaged over data-parallel ranks).
    """

    def __init__(self, moe: MoE, mesh: DeviceMesh, *, grad_scale: float | None = None) -> None:
        nn.Module.__init__(self)
        self.cfg = moe.cfg
        self.gate, self.shared = moe.gate, moe.shared
        self.aux_loss = moe.aux_loss
        self.register_buffer("load", moe.load.clone(), persistent=False)
        self.group = mesh.get_group()
        self.world, self.rank = dist.get_world_size(self.group), dist.get_rank(self.group)
        e = self.cfg.n_routed_experts
        self.chunk = chunk_size(e, self.world)
        self.first, self.stop = chunk_bounds(e, self.world, self.rank)
        self.local_experts = self.stop - self.first
        self.experts_of = [
            chunk_bounds(e, self.world, r)[1] - chunk_bounds(e, self.world, r)[0]
            for r in range(self.world)
        ]
        for name in ("expert_w1", "expert_w3", "expert_w2"):
            full = getattr(moe, name).detach()
            setattr(self, name, nn.Parameter(distribute_tensor(full, mesh, [Shard(0)])))
        self.grad_scale = 1.0 / self.world if grad_scale is None else grad_scale
        self.stats = CommStats()
        self._exchange = Exchange(self.group, self.stats)

    def _local_experts(self, xs: torch.Tensor, counts: torch.Tensor, scale: float) -> torch.Tensor:
        """This rank's experts on ``xs`` grouped by local expert (``counts`` tokens each)."""
        local = tuple(w.to_local() for w in (self.expert_w1, self.expert_w3, self.expert_w2))
        outs = self._grouped(xs, counts, local) if self.local_experts else None
        if outs is None:
            parts, start = [], 0
            for e, n in enumerate(counts.tolist()):
                if n:
                    parts.append(self.expert(e, xs[start : start + n]))
                    start += n
            # nothing arrived: still a (zero) gradient for every local expert weight
            outs = torch.cat(parts) if parts else xs[:0] + sum(w.sum() for w in local) * 0
        if scale != 1.0 and outs.requires_grad:
            outs.register_hook(lambda g: g * scale)
        return outs

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Local routed expert ``e`` (an index into this rank's block) applied to x (N, D)."""
        w1, w3, w2 = (w.to_local()[e] for w in (self.expert_w1, self.expert_w3, self.expert_w2))
        return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)

    def run_experts(self, xs: torch.Tensor, per_expert: torch.Tensor) -> torch.Tensor:
        """Expert outputs for tokens ``xs`` sorted by expert, computed on their owners (the
        routing and combining around it are :class:`MoE`'s own ``forward``)."""
        self.stats.ids_requested += xs.shape[0]
        self.stats.ids_sent += xs.shape[0]
        if self.world == 1:  # every expert is here: no exchange, no host sync
            return self._local_experts(xs, per_expert, 1.0)
        # 1. counts: how many of my tokens go to each of every destination's experts
        recv_counts = self._exchange.counts(
            per_expert, recv_splits=[self.local_experts] * self.world, send_splits=self.experts_of
        ).view(self.world, self.local_experts)  # (source, local expert)
        send_splits = [int(c.sum()) for c in per_expert.split(self.experts_of)]
        recv_splits = recv_counts.sum(1).tolist()
        # 2. tokens, then group what arrived by local expert
        received = self._exchange.rows(xs, send_splits, recv_splits)
        scale = self.grad_scale if received.requires_grad else 1.0
        if scale != 1.0:  # expert weights see 1/world of the summed gradient, inputs all of it
            received.register_hook(lambda g: g / scale)
        expert_of = torch.repeat_interleave(
            torch.arange(self.local_experts, device=xs.device).repeat(self.world),
            recv_counts.flatten(),
        )
        _, regroup = expert_of.sort(stable=True)
        counts = recv_counts.sum(0)
        outs = self._local_experts(received[regroup], counts, scale)
        back = torch.empty_like(outs).index_copy(0, regroup, outs)
        # 3. outputs back to where the tokens came from, in the order they were sent
        return self._exchange.rows(back, recv_splits, send_splits)

    @torch.no_grad()
    def update_bias(self) -> None:
        """Auxiliary-loss-free balancing on the load summed over every rank."""
        dist.all_reduce(self.load, group=self.group)
        super().update_bias()
