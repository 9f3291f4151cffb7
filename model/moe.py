"""DeepSeekMoE: shared experts plus routed experts with group-limited top-k.

Routing (as DeepSeek-V3): affinities ``s = sigmoid(x W_g)`` (or softmax / sqrt-softplus,
``score_func``); experts are *chosen* on
``s + bias`` within the best ``n_limited_groups`` groups (a group's score is the sum of its
top-2 biased affinities), and *weighted* by the unbiased ``s`` normalised over the chosen
experts (``norm_topk_prob``) times ``route_scale``. The bias is not trained: ``update_bias`` nudges it from the
observed load (auxiliary-loss-free balancing); an optional small sequence-wise balance loss
is kept in ``aux_loss``. Tokens are sorted by expert and each expert runs once on its
contiguous slice — no loop over tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from engram_sdk.model.config import ModelConfig
from torch import nn


class MLP(nn.Module):
    """SwiGLU feed-forward: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, inter_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, inter_dim, bias=False)
        self.w2 = nn.Linear(inter_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, inter_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def route_scores(logits: torch.Tensor, score_func: str) -> torch.Tensor:
    """Expert affinities from router logits: ``sigmoid``, ``softmax`` or ``sqrtsoftplus``."""
    if score_func == "sigmoid":
        return torch.sigmoid(logits)
    if score_func == "softmax":
        return torch.softmax(logits, dim=-1)
    if score_func == "sqrtsoftplus":
        return torch.sqrt(F.softplus(logits))
    raise ValueError(f"score_func must be sigmoid, softmax or sqrtsoftplus, got {score_func!r}")


class Gate(nn.Module):
    """Router: expert ids and weights per token.

    As DeepSeek-V3's reference gate: groups score by their top-2 biased affinities (by their
    best affinity when ``gate_bias`` is off); the chosen experts are weighted by the unbiased
    affinities, normalised over the chosen ones when ``norm_topk_prob``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.empty(cfg.n_routed_experts, cfg.dim))
        nn.init.normal_(self.weight, std=cfg.dim**-0.5)
        self.register_buffer("bias", torch.zeros(cfg.n_routed_experts), persistent=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N, D) → weights (N, k), expert ids (N, k), affinities (N, E)."""
        cfg = self.cfg
        scores = route_scores(F.linear(x.float(), self.weight.float()), cfg.score_func)
        choice = scores + self.bias if cfg.gate_bias else scores
        if cfg.n_expert_groups > 1:
            grouped = choice.view(x.shape[0], cfg.n_expert_groups, -1)
            if cfg.gate_bias:
                group_score = grouped.topk(min(2, grouped.shape[-1]), dim=-1).values.sum(-1)
            else:
                group_score = grouped.amax(dim=-1)
            keep = group_score.topk(cfg.n_limited_groups, dim=-1).indices
            mask = torch.ones_like(group_score, dtype=torch.bool).scatter_(1, keep, False)
            choice = grouped.masked_fill(mask.unsqueeze(-1), float("-inf")).flatten(1)
        ids = choice.topk(cfg.n_activated_experts, dim=-1).indices
        weights = scores.gather(1, ids)
        if cfg.norm_topk_prob:
            weights = weights / weights.sum(-1, keepdim=True)
        return (weights * cfg.route_scale).to(x.dtype), ids, scores


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The autocast dtype where autocast is on for ``x``'s device, else ``x``'s own."""
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype


class MoE(nn.Module):
    """Shared experts + routed experts (see the module docstring).

    Routed expert weights are stacked, (E, I, D) for ``expert_w1``/``expert_w3`` and (E, D, I)
    for ``expert_w2``, so on Hopper GPUs all experts run as three grouped GEMMs over the
    expert-sorted tokens; elsewhere each expert runs once on its contiguous slice.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gate = Gate(cfg)
        e, d, i = cfg.n_routed_experts, cfg.dim, cfg.moe_inter_dim
        self.expert_w1 = nn.Parameter(torch.empty(e, i, d).uniform_(-(d**-0.5), d**-0.5))
        self.expert_w3 = nn.Parameter(torch.empty(e, i, d).uniform_(-(d**-0.5), d**-0.5))
        self.expert_w2 = nn.Parameter(torch.empty(e, d, i).uniform_(-(i**-0.5), i**-0.5))
        self.shared = (
            MLP(cfg.dim, cfg.n_shared_experts * cfg.moe_inter_dim) if cfg.n_shared_experts else None
        )
        self.register_buffer("load", torch.zeros(cfg.n_routed_experts), persistent=False)
        self.aux_loss = torch.zeros(())

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Routed expert ``e`` applied to x (N, D)."""
        return F.linear(
            F.silu(F.linear(x, self.expert_w1[e])) * F.linear(x, self.expert_w3[e]),
            self.expert_w2[e],
        )

    def _grouped(
        self,
        xs: torch.Tensor,
        counts: torch.Tensor,
        weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor | None:
        """All experts as three grouped GEMMs (Hopper, autocast), else None.

        ``weights``: the stacked (w1, w3, w2) to use; the module's own by default.
        """
        if not (xs.is_cuda and hasattr(torch, "_grouped_mm") and torch.is_autocast_enabled("cuda")):
            return None
        if (
            torch.cuda.get_device_capability(xs.device) < (9, 0)
            or self.cfg.dim % 16
            or self.cfg.moe_inter_dim % 16
        ):
            return None
        dt = torch.bfloat16
        offs = counts.cumsum(0).to(torch.int32)
        a = xs.to(dt)
        stacked = weights or (self.expert_w1, self.expert_w3, self.expert_w2)
        w1, w3, w2 = (w.to(dt).transpose(1, 2) for w in stacked)
        h = F.silu(torch._grouped_mm(a, w1, offs=offs)) * torch._grouped_mm(a, w3, offs=offs)
        return torch._grouped_mm(h, w2, offs=offs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        weights, ids, scores = self.gate(flat)
        sorted_ids, order = ids.flatten().sort(stable=True)  # pairs grouped by expert
        token_of = order // ids.shape[1]
        # Per-expert counts from the sorted ids: unlike bincount, no device-to-host sync, so
        # the host can queue the whole forward ahead of the GPU.
        experts = torch.arange(self.cfg.n_routed_experts + 1, device=ids.device)
        counts = torch.searchsorted(sorted_ids, experts).diff()
        with torch.no_grad():
            self.load += counts.to(self.load.dtype)
        # under autocast the tokens are gathered and the outputs combined in its dtype (bf16):
        # half the bytes of float32 rows, and no cast of the gathered rows
        work = flat.to(_compute_dtype(flat))
        ys = self.run_experts(work[token_of], counts)
        ys = ys.to(work.dtype) * weights.flatten()[order].unsqueeze(-1).to(work.dtype)
        # back to (token, choice) order, then each token's choices summed: no scatter-add
        by_pair = torch.empty_like(ys).index_copy_(0, order, ys)
        out = by_pair.view(-1, ids.shape[1], shape[-1]).sum(1)
        if self.shared is not None:
            out = out + self.shared(flat)
        if self.training and self.cfg.seq_aux_alpha > 0:
            self.aux_loss = self._sequence_balance_loss(scores, ids, shape)
        return out.view(shape)

    def run_experts(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Routed expert outputs for tokens ``xs`` sorted by expert (``counts`` per expert)."""
        ys = self._grouped(xs, counts)
        if ys is None:
            parts, start = [], 0
            for e, n in enumerate(counts.tolist()):
                if n:
                    parts.append(self.expert(e, xs[start : start + n]))
                    start += n
            ys = torch.cat(parts) if parts else xs.new_zeros(0, xs.shape[-1])
        return ys

    def _sequence_balance_loss(
        self, scores: torch.Tensor, ids: torch.Tensor, shape: torch.Size
    ) -> torch.Tensor:
        cfg = self.cfg
        b, t = shape[0], shape[1] if len(shape) == 3 else 1
        e, k = cfg.n_routed_experts, cfg.n_activated_experts
        s = (scores / scores.sum(-1, keepdim=True)).view(b, t, e)
        hits = (
            torch.zeros(b, t * k, e, device=scores.device)
            .scatter_(2, ids.view(b, t * k, 1), 1.0)
            .sum(1)
        )
        f = hits * e / (k * t)
        return cfg.seq_aux_alpha * (f * s.mean(1)).sum(-1).mean()

    @torch.no_grad()
    def update_bias(self) -> None:
        """Auxiliary-loss-free balancing: raise the bias of under-loaded experts, lower over-loaded."""
        if self.cfg.gate_bias and self.load.sum() > 0:
            self.gate.bias += self.cfg.bias_update_speed * torch.sign(self.load.mean() - self.load)
        self.load.zero_()
