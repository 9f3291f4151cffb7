"""Dynamic manifold-constrained hyper-connections (mHC), as DeepSeek-V4 runs them.

Each sub-layer reads its input from ``hc_mult`` residual streams and writes back into them
with three per-token mappings computed from the RMS-normalised, flattened streams by one
linear map: ``pre`` (sigmoid, how the streams are collapsed into the input), ``post``
(2·sigmoid, how the output is spread) and ``comb`` (softmax rows, projected toward a doubly
stochastic matrix by Sinkhorn-Knopp, how the streams are mixed):
``streams' = post ⊗ out + combᵀ · streams``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _flat_norm(streams: torch.Tensor, eps: float) -> torch.Tensor:
    flat = streams.flatten(2).float()
    return flat * torch.rsqrt(flat.square().mean(-1, keepdim=True) + eps)


class DynamicHyperConnection(nn.Module):
    """The mHC around one sub-layer over (B, T, hc, D) streams."""

    def __init__(self, hc_mult: int, dim: int, iters: int, hc_eps: float, norm_eps: float) -> None:
        super().__init__()
        self.hc, self.iters, self.hc_eps, self.norm_eps = hc_mult, iters, hc_eps, norm_eps
        width = (2 + hc_mult) * hc_mult
        self.fn = nn.Parameter(torch.randn(width, hc_mult * dim) * 0.02)
        self.base = nn.Parameter(torch.zeros(width))
        self.scale = nn.Parameter(torch.ones(3))

    def mappings(self, streams: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """pre (B, T, hc), post (B, T, hc), comb (B, T, hc, hc), all float32."""
        hc, eps = self.hc, self.hc_eps
        mixes = F.linear(_flat_norm(streams, self.norm_eps), self.fn.float())
        pre, post, comb = mixes.split([hc, hc, hc * hc], dim=-1)
        pre_b, post_b, comb_b = self.base.float().split([hc, hc, hc * hc])
        s = self.scale.float()
        pre = torch.sigmoid(pre * s[0] + pre_b) + eps
        post = 2 * torch.sigmoid(post * s[1] + post_b)
        comb = torch.softmax((comb * s[2] + comb_b).unflatten(-1, (hc, hc)), dim=-1) + eps
        comb = comb / (comb.sum(dim=-2, keepdim=True) + eps)
        for _ in range(self.iters - 1):
            comb = comb / (comb.sum(dim=-1, keepdim=True) + eps)
            comb = comb / (comb.sum(dim=-2, keepdim=True) + eps)
        return pre, post, comb

    def read(self, streams: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The sub-layer's input (B, T, D) and the mappings :meth:`write` needs."""
        pre, post, comb = self.mappings(streams)
        collapsed = (pre.unsqueeze(-1) * streams).sum(dim=2).to(streams.dtype)
        return collapsed, (post, comb)

    def write(
        self, streams: torch.Tensor, out: torch.Tensor, maps: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        post, comb = (m.to(streams.dtype) for m in maps)
        return post.unsqueeze(-1) * out.unsqueeze(-2) + comb.transpose(-1, -2) @ streams


class HyperHead(nn.Module):
    """The final collapse of the streams into one hidden state (per-token sigmoid weights)."""

    def __init__(self, hc_mult: int, dim: int, hc_eps: float, norm_eps: float) -> None:
        super().__init__()
        self.hc_eps, self.norm_eps = hc_eps, norm_eps
        self.fn = nn.Parameter(torch.randn(hc_mult, hc_mult * dim) * 0.02)
        self.base = nn.Parameter(torch.zeros(hc_mult))
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, streams: torch.Tensor) -> torch.Tensor:
        mixes = F.linear(_flat_norm(streams, self.norm_eps), self.fn.float())
        pre = torch.sigmoid(mixes * self.scale.float() + self.base.float()) + self.hc_eps
        return (pre.unsqueeze(-1) * streams).sum(dim=2).to(streams.dtype)
