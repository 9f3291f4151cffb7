"""Manifold-constrained hyper-connections (mHC): ``hc_mult`` residual streams.

Each sub-layer reads a mix of the streams (``pre``, softmax weights), and its output is
spread back (``post``); the streams are mixed by a matrix projected onto the doubly
stochastic matrices by Sinkhorn-Knopp, so the residual keeps its scale. ``hc_mult = 1`` is a
plain residual connection.
"""

from __future__ import annotations

import torch
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
