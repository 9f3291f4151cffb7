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
from engram_sdk.model.v4.cache import CompressorState
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

    def forward(
        self, x: torch.Tensor, freqs: torch.Tensor, state: CompressorState | None = None
    ) -> torch.Tensor:
        """Entries completed by x (all entries so far when ``state`` carries a sequence)."""
        b, m, d, width = x.shape[0], self.ratio, self.head_dim, self.ape.shape[-1]
        kv, gate = self.wkv(x), self.wgate(x)
        first = 0 if state is None else state.count
        if state is not None and state.pending_kv is not None:
            kv = torch.cat([state.pending_kv, kv], dim=1)
            gate = torch.cat([state.pending_gate, gate], dim=1)
        windows = kv.shape[1] // m
        if state is not None:
            state.pending_kv, state.pending_gate = kv[:, windows * m :], gate[:, windows * m :]
        if windows == 0:
            new = x.new_zeros(b, 0, d)
            return new if state is None else state.append(new)
        kv = kv[:, : windows * m].view(b, windows, m, width)
        gate = gate[:, : windows * m].view(b, windows, m, width) + self.ape
        if self.overlap:  # slots [0, m): previous window's first series; [m, 2m): own second
            kv, gate = self._overlap(kv, gate, state)
        weights = gate.float().softmax(dim=2).to(kv.dtype)
        pooled = self.norm((kv * weights).sum(dim=2))  # (B, W, d)
        positions = (first + torch.arange(windows, device=x.device)) * m
        new = rotate_tail(pooled, freqs[positions])
        return new if state is None else state.append(new)

    def _overlap(
        self, kv: torch.Tensor, gate: torch.Tensor, state: CompressorState | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.head_dim
        if state is None or state.prev_kv is None:  # before the first window: nothing
            first_kv = torch.zeros_like(kv[:, :1, :, :d])
            first_gate = torch.full_like(gate[:, :1, :, :d], float("-inf"))
        else:
            first_kv, first_gate = state.prev_kv, state.prev_gate
        if state is not None:
            state.prev_kv, state.prev_gate = kv[:, -1:, :, :d], gate[:, -1:, :, :d]
        prev_kv = torch.cat([first_kv, kv[:, :-1, :, :d]], dim=1)
        prev_gate = torch.cat([first_gate, gate[:, :-1, :, :d]], dim=1)
        return torch.cat([prev_kv, kv[..., d:]], dim=2), torch.cat([prev_gate, gate[..., d:]], 2)

    def visible(self, positions: torch.Tensor, windows: int) -> torch.Tensor:
        """(T, W) bool: which entries the queries at ``positions`` may see."""
        ready = (positions + 1) // self.ratio
        return torch.arange(windows, device=positions.device)[None, :] < ready[:, None]


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

    def forward(
        self, x: torch.Tensor, q_latent: torch.Tensor, freqs: torch.Tensor,
        positions: torch.Tensor, state: CompressorState | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """(B, T, W) bool: the compressed entries each query (at ``positions``) attends to.

        The dense reference: it builds (B, T, H, W) scores. The sparse path takes
        :meth:`inputs` and selects with a chunked running top-k instead."""
        q, weights, keys = self.inputs(x, q_latent, freqs, positions, state)
        logits = F.relu(torch.einsum("bthd,bsd->bths", q.float(), keys.float()))
        scores = torch.einsum("bths,bth->bts", logits * self.head_dim**-0.5, weights.float())
        visible = self.compressor.visible(positions, keys.shape[1])
        scores = scores.masked_fill(~visible, float("-inf"))
        k = min(self.topk, keys.shape[1])
        top = scores.topk(k, dim=-1).indices
        chosen = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top, True)
        return chosen & visible

    def inputs(
        self, x: torch.Tensor, q_latent: torch.Tensor, freqs: torch.Tensor,
        positions: torch.Tensor, state: CompressorState | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Index queries (B, T, H, d), head weights · H^-½ (B, T, H) and keys (B, W, d): every
        entry so far (advancing ``state``)."""
        b, t, _ = x.shape
        keys = self.compressor(x, freqs, state)
        q = self.wq_b(q_latent).view(b, t, self.n_heads, self.head_dim)
        weights = self.weights_proj(x).float() * self.n_heads**-0.5
        return rotate_tail(q, freqs[positions]), weights, keys
