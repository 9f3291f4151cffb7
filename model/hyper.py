"""Manifold-constrained hyper-connections (mHC): ``hc_mult`` residual streams.

Dynamic (the paper's and DeepSeek-V4's form, :class:`DynamicHyperConnection`): each
sub-layer's three mappings are computed per token from the RMS-normalised, flattened
streams by one linear map: ``pre`` (sigmoid; how the streams collapse into the input),
``post`` (2·sigmoid; how the output is spread) and ``comb`` (softmax rows projected toward a
doubly stochastic matrix by Sinkhorn-Knopp; how the streams mix):
``streams' = post ⊗ out + combᵀ · streams``. :class:`HyperHead` collapses the streams at
the end. Static (:class:`HyperConnection`, format-1 checkpoints): learned constants, softmax
``pre``. ``hc_mult = 1`` is a plain residual connection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sinkhorn(logits: torch.Tensor, iters: int) -> torch.Tensor:
    """Project exp(logits) (n, n) to a doubly stochastic matrix."""
    m = torch.exp(logits - logits.max())
    for _ in range(iters):
        m = m / m.sum(dim=1, keepdim=True)
        m = m / m.sum(dim=0, keepdim=True)
    return m


class HyperConnection(nn.Module):
    """Wraps one sub-layer's residual over (B, T, hc, D) streams."""

    def __init__(self, hc_mult: int, iters: int) -> None:
        super().__init__()
        self.hc_mult, self.iters = hc_mult, iters
        if hc_mult > 1:
            self.pre = nn.Parameter(torch.zeros(hc_mult))
            self.post = nn.Parameter(torch.zeros(hc_mult))
            self.res = nn.Parameter(torch.eye(hc_mult) * 4.0)

    def read(self, streams: torch.Tensor) -> torch.Tensor:
        """The sub-layer's input (B, T, D)."""
        if self.hc_mult == 1:
            return streams[:, :, 0]
        return torch.einsum("bthd,h->btd", streams, torch.softmax(self.pre, 0).to(streams.dtype))

    def write(self, streams: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Streams after adding the sub-layer's output (B, T, D)."""
        if self.hc_mult == 1:
            return streams + out.unsqueeze(2)
        mix = sinkhorn(self.res, self.iters).to(streams.dtype)
        mixed = torch.einsum("ij,btjd->btid", mix, streams)
        return mixed + (2 * torch.sigmoid(self.post)).to(streams.dtype)[:, None] * out.unsqueeze(2)


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
