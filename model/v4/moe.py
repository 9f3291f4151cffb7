"""DeepSeek-V4's MoE: hash-routed (frozen token → experts table) or top-k routed experts
with clipped SwiGLU, plus one shared expert (also clipped)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from engram_sdk.model.moe import route_scores
from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.v41_config import V41Config
from torch import nn


def clipped_swiglu(gate: torch.Tensor, up: torch.Tensor, limit: float) -> torch.Tensor:
    """silu(min(gate, limit)) · clamp(up, ±limit)."""
    return F.silu(gate.clamp(max=limit)) * up.clamp(min=-limit, max=limit)


class ClippedMLP(nn.Module):
    """The shared expert: w2(clipped_swiglu(w1 x, w3 x))."""

    def __init__(self, dim: int, inter_dim: int, limit: float) -> None:
        super().__init__()
        self.limit = limit
        self.w1 = nn.Linear(dim, inter_dim, bias=False)
        self.w2 = nn.Linear(inter_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, inter_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(clipped_swiglu(self.w1(x), self.w3(x), self.limit))


class V4Gate(nn.Module):
    """Router: ``tid2eid[token]`` picks the experts (hash) or top-k of affinities + bias."""

    def __init__(self, cfg: V4Config, hashed: bool) -> None:
        super().__init__()
        self.cfg, self.hashed = cfg, hashed
        self.weight = nn.Parameter(torch.randn(cfg.n_routed_experts, cfg.dim) * cfg.dim**-0.5)
        if hashed:
            table = torch.randint(
                0, cfg.n_routed_experts, (cfg.vocab_size, cfg.n_activated_experts)
            )
            self.register_buffer("tid2eid", table)
        else:
            self.register_buffer("bias", torch.zeros(cfg.n_routed_experts))

    def forward(
        self, x: torch.Tensor, token_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, D), token ids (N,) → weights (N, k), expert ids (N, k)."""
        scores = route_scores(F.linear(x, self.weight), self.cfg.score_func)
        if self.hashed:
            ids = self.tid2eid[token_ids].long()
        else:
            ids = (scores + self.bias).topk(self.cfg.n_activated_experts, dim=-1).indices
        weights = scores.gather(1, ids)
        weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return weights * self.cfg.route_scale, ids


class V41Gate(nn.Module):
    """V4.1's router: top-k of ``score_func(logits / gate_temp)`` + ``bias``; the weights
    are the unbiased scores (normalised when ``norm_topk_prob`` and k > 1). ``bias_vl``
    replaces ``bias`` for image tokens (kept for checkpoints; text never uses it)."""

    def __init__(self, cfg: V41Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.randn(cfg.n_routed_experts, cfg.dim) * cfg.dim**-0.5)
        self.bias = nn.Parameter(torch.zeros(cfg.n_routed_experts), requires_grad=False)
        self.bias_vl = nn.Parameter(torch.zeros(cfg.n_routed_experts), requires_grad=False)

    def forward(
        self, x: torch.Tensor, token_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, D) → weights (N, k), expert ids (N, k); ``token_ids`` unused."""
        cfg = self.cfg
        logits = F.linear(x.float(), self.weight.float()) / cfg.gate_temp
        scores = route_scores(logits, cfg.score_func)
        ids = (scores + self.bias.float()).topk(cfg.n_activated_experts, dim=-1).indices
        weights = scores.gather(1, ids)
        if cfg.norm_topk_prob and cfg.n_activated_experts > 1:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return (weights * cfg.route_scale).to(x.dtype), ids


class V4MoE(nn.Module):
    """Routed experts stacked as (E, I, D) / (E, D, I), plus the shared expert.

    A :class:`V41Config` gets V4.1's router (:class:`V41Gate`)."""

    def __init__(self, cfg: V4Config | V41Config, hashed: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        e, d, i = cfg.n_routed_experts, cfg.dim, cfg.moe_inter_dim
        self.gate = V41Gate(cfg) if isinstance(cfg, V41Config) else V4Gate(cfg, hashed)
        self.expert_w1 = nn.Parameter(torch.randn(e, i, d) * d**-0.5)
        self.expert_w3 = nn.Parameter(torch.randn(e, i, d) * d**-0.5)
        self.expert_w2 = nn.Parameter(torch.randn(e, d, i) * i**-0.5)
        self.shared = ClippedMLP(d, cfg.n_shared_experts * i, cfg.swiglu_limit)

    def forward(self, x: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        weights, ids = self.gate(flat, token_ids.reshape(-1))
        out = torch.zeros_like(flat)
        for e in ids.unique().tolist():
            token, slot = torch.where(ids == e)
            h = clipped_swiglu(
                flat[token] @ self.expert_w1[e].T, flat[token] @ self.expert_w3[e].T,
                self.cfg.swiglu_limit,
            )  # fmt: skip
            part = (h @ self.expert_w2[e].T) * weights[token, slot, None]
            out.index_add_(0, token, part.to(out.dtype))  # autocast: router weights in fp32
        return (out + self.shared(flat)).view(shape)
