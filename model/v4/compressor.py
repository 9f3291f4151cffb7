"""V4's KV compressors and lightning indexer (compressed sparse / heavily compressed attention).

A compressor turns every ``ratio`` consecutive tokens into one entry: per channel, a
softmax over the window of ``gate + ape`` weighs the projected values; the sum is
RMS-normalised and rotated at the window's first position. With ``overlap`` (CSA) each
token projects two series and entry ``w`` pools window ``w``'s second series with window
``w-1``'s first, so entries cover ``2 * ratio`` tokens with stride ``ratio``. Only complete
windows give entries; entry ``w`` is visible to query ``t`` once ``t + 1 >= (w + 1) * ratio``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from engram_sdk.model.v4.rope import rotate_tail
from torch import nn


class Compressor(nn.Module):
    """Compressed entries (B, W, head_dim) of x (B, T, D), W = T // ratio."""

    def __init__(self, dim: int, head_dim: int, ratio: int, overlap: bool, eps: float) -> None:
        super().__init__()
        self.head_dim, self.ratio, self.overlap = head_dim, ratio, overlap
        width = 2 * head_dim if overlap else head_dim
        self.wkv = nn.Linear(dim, width, bias=False)
        self.wgate = nn.Linear(dim, width, bias=False)
        self.ape = nn.Parameter(torch.zeros(ratio, width))
        self.norm = nn.RMSNorm(head_dim, eps=eps)

    def forward(self, x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        windows, m, d = t // self.ratio, self.ratio, self.head_dim
        if windows == 0:
            return x.new_zeros(b, 0, d)
        width = self.ape.shape[-1]
        kv = self.wkv(x[:, : windows * m]).view(b, windows, m, width)
        gate = self.wgate(x[:, : windows * m]).view(b, windows, m, width) + self.ape
        if self.overlap:  # slots [0, m): previous window's first series; [m, 2m): own second
            prev_kv = F.pad(kv[:, :-1, :, :d], (0, 0, 0, 0, 1, 0))
            prev_gate = F.pad(gate[:, :-1, :, :d], (0, 0, 0, 0, 1, 0), value=float("-inf"))
            kv = torch.cat([prev_kv, kv[..., d:]], dim=2)
            gate = torch.cat([prev_gate, gate[..., d:]], dim=2)
        weights = gate.float().softmax(dim=2).to(kv.dtype)
        pooled = self.norm((kv * weights).sum(dim=2))  # (B, W, d)
        positions = torch.arange(windows, device=x.device) * m
        return rotate_tail(pooled, freqs[positions])

    def visible(self, t: int, windows: int, device: torch.device) -> torch.Tensor:
        """(T, W) bool: which entries each query position may see."""
        ready = (torch.arange(t, device=device) + 1) // self.ratio
        return torch.arange(windows, device=device)[None, :] < ready[:, None]


class Indexer(nn.Module):
    """Lightning indexer: I[t, s] = Σ_h w_h(t) · relu(q_h(t) · k(s)) / sqrt(d), top-k per query."""

    def __init__(
        self, dim: int, q_lora_rank: int, n_heads: int, head_dim: int, ratio: int, topk: int,
        eps: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_heads, self.head_dim, self.topk = n_heads, head_dim, topk
        self.wq_b = nn.Linear(q_lora_rank, n_heads * head_dim, bias=False)
        self.weights_proj = nn.Linear(dim, n_heads, bias=False)
        self.compressor = Compressor(dim, head_dim, ratio, overlap=True, eps=eps)

    def forward(self, x: torch.Tensor, q_latent: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        """(B, T, W) bool: the compressed entries each query attends to."""
        b, t, _ = x.shape
        keys = self.compressor(x, freqs)  # (B, W, d)
        q = rotate_tail(self.wq_b(q_latent).view(b, t, self.n_heads, self.head_dim), freqs[:t])
        logits = F.relu(torch.einsum("bthd,bsd->bths", q.float(), keys.float()))
        weights = self.weights_proj(x).float() * self.n_heads**-0.5
        scores = torch.einsum("bths,bth->bts", logits * self.head_dim**-0.5, weights)
        visible = self.compressor.visible(t, keys.shape[1], x.device)
        scores = scores.masked_fill(~visible, float("-inf"))
        k = min(self.topk, keys.shape[1])
        top = scores.topk(k, dim=-1).indices
        chosen = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top, True)
        return chosen & visible
