"""The Engram layer: gated N-gram memory added to the residual stream.

For each position, the N-gram addresses of every head index one flat table; the rows are
concatenated over heads and orders into a memory vector ``e``. Per residual stream ``i``:
``key = RMSNorm(W_k,i e)``, ``query = RMSNorm(h_i)``, ``g = sigmoid(ssqrt(key·query / sqrt(d)))``
with ``ssqrt(x) = sign(x) sqrt(|x|)``; the value ``g · W_v e`` plus a depthwise causal short
convolution of it (dilation = max N-gram size) is added to stream ``i`` before attention.
It depends on no particular model: hidden states in, an update out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engram_sdk.engram.table import EmbeddingTable, EngramTable, MissingTable


class ShortConv(nn.Module):
    """Depthwise causal convolution over (B, T, hc, D) with per-stream RMSNorm and SiLU.

    ``state`` carries the last ``(kernel_size - 1) * dilation`` normalised inputs, so
    decoding one token at a time equals convolving the whole sequence.
    """

    def __init__(self, dim: int, hc_mult: int, kernel_size: int, dilation: int, eps: float) -> None:
        super().__init__()
        self.hc_mult, self.dim = hc_mult, dim
        self.kernel_size, self.dilation = kernel_size, dilation
        self.norms = nn.ModuleList([nn.RMSNorm(dim, eps=eps) for _ in range(hc_mult)])
        channels = dim * hc_mult
        self.conv = nn.Conv1d(
            channels, channels, kernel_size, groups=channels, bias=False, dilation=dilation
        )
        nn.init.zeros_(self.conv.weight)  # the paper's init: Engram starts as identity

    @property
    def context(self) -> int:
        """How many past positions the convolution sees."""
        return (self.kernel_size - 1) * self.dilation

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, g, d = x.shape
        normed = torch.cat([self.norms[i](x[:, :, i]) for i in range(g)], dim=-1)  # (B, T, g*d)
        past = state if state is not None else normed.new_zeros(b, self.context, g * d)
        full = torch.cat([past, normed], dim=1)
        y = F.silu(self.conv(full.transpose(1, 2))).transpose(1, 2)  # (B, T, g*d)
        return y.reshape(b, t, g, d), full[:, full.shape[1] - self.context :]


class Engram(nn.Module):
    """One Engram layer (see the module docstring).

    ``allocate_table=False`` builds the layer without rows (:class:`MissingTable`), for
    tables served from a store. As deepseek-ai/Engram: the key and query norms use ``eps`` (None: the dtype's machine
    epsilon, torch's default), the convolution's norms ``conv_eps`` = 1e-5, and the
    convolution starts at zero so a fresh layer adds only the gated value.
    """

    def __init__(
        self,
        layer_id: int,
        hidden: int,
        hc_mult: int,
        max_ngram: int,
        heads_per_ngram: int,
        embed_per_ngram: int,
        table_rows: int,
        kernel_size: int = 4,
        eps: float | None = None,
        conv_eps: float = 1e-5,
        *,
        allocate_table: bool = True,
    ) -> None:
        super().__init__()
        if embed_per_ngram % heads_per_ngram:
            raise ValueError(
                f"embed_per_ngram {embed_per_ngram} must divide by heads_per_ngram {heads_per_ngram}"
            )
        self.layer_id, self.hidden, self.hc_mult = layer_id, hidden, hc_mult
        self.heads = (max_ngram - 1) * heads_per_ngram
        dim = embed_per_ngram // heads_per_ngram
        self.table: EngramTable = (
            EmbeddingTable(table_rows, dim) if allocate_table else MissingTable(table_rows, dim)
        )
        memory_dim = (max_ngram - 1) * embed_per_ngram
        self.value_proj = nn.Linear(memory_dim, hidden)
        self.key_projs = nn.ModuleList([nn.Linear(memory_dim, hidden) for _ in range(hc_mult)])
        self.key_norms = nn.ModuleList([nn.RMSNorm(hidden, eps=eps) for _ in range(hc_mult)])
        self.query_norms = nn.ModuleList([nn.RMSNorm(hidden, eps=eps) for _ in range(hc_mult)])
        self.short_conv = ShortConv(hidden, hc_mult, kernel_size, max_ngram, conv_eps)

    def set_table(self, table: EngramTable) -> None:
        """Look rows up in another table module (a store-backed one, say); shapes must match."""
        if not isinstance(table, nn.Module) or not isinstance(table, EngramTable):
            raise TypeError(
                f"an Engram table is an nn.Module with rows, dim and lookup(); "
                f"got {type(table).__name__}"
            )
        if (table.rows, table.dim) != (self.table.rows, self.table.dim):
            raise ValueError(
                f"table is {table.rows}x{table.dim}, layer {self.layer_id} needs "
                f"{self.table.rows}x{self.table.dim}"
            )
        self.table = table

    def gate(self, hidden: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Gates (B, T, hc, 1) from hidden (B, T, hc, D) and memory (B, T, M)."""
        gates = []
        for i in range(self.hc_mult):
            key = self.key_norms[i](self.key_projs[i](memory))
            query = self.query_norms[i](hidden[:, :, i])
            score = (key * query).sum(-1) / math.sqrt(self.hidden)
            score = score.abs().clamp_min(1e-6).sqrt() * score.sign()
            gates.append(score.sigmoid())
        return torch.stack(gates, dim=2).unsqueeze(-1)

    def forward(
        self,
        hidden: torch.Tensor,
        flat_addresses: torch.Tensor,
        conv_state: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update (B, T, hc, D) to add to the residual, and the convolution state."""
        memory = self.table.lookup(flat_addresses).flatten(-2).to(hidden.dtype)  # (B, T, M)
        value = self.gate(hidden, memory) * self.value_proj(memory).unsqueeze(2)
        conv, state = self.short_conv(value, conv_state)
        return value + conv, state


class EngramV41(nn.Module):
    """DeepSeek-V4.1's Engram variant: no short convolution, one projection ``wkv``.

    The rows of all hash columns (``(max_ngram - 1) * n_heads``, each ``head_dim`` wide)
    are concatenated into ``e``; ``wkv e`` splits into one key per residual stream and one
    shared value. Per stream ``i``, with ``w = q_weight[i] * k_weight[i]`` (only the product
    matters) and RMS statistics taken separately over ``h_i`` and ``key_i``:
    ``dot = Σ h_i w key_i / (rms(h_i) rms(key_i) sqrt(D))``,
    ``g_i = sigmoid(sign(dot) sqrt(max(|dot|, 1e-6)))``; the update ``g_i · value`` is
    added to stream ``i``. Positions whose ``token_mask`` is False get no update. Names
    follow the reference (``wkv``, ``q_weight``, ``k_weight``); the rows live in
    :attr:`table` (``embed`` in the checkpoint).
    """

    def __init__(
        self,
        layer_id: int,
        hidden: int,
        hc_mult: int,
        n_hash_cols: int,
        head_dim: int,
        table_rows: int,
        eps: float = 1e-20,
    ) -> None:
        super().__init__()
        self.layer_id, self.hidden, self.hc_mult, self.eps = layer_id, hidden, hc_mult, eps
        self.table: EngramTable = EmbeddingTable(table_rows, head_dim)
        self.wkv = nn.Linear(n_hash_cols * head_dim, hidden * (hc_mult + 1), bias=False)
        self.q_weight = nn.Parameter(torch.ones(hc_mult, hidden))
        self.k_weight = nn.Parameter(torch.ones(hc_mult, hidden))

    set_table = Engram.set_table

    def forward(
        self,
        hidden: torch.Tensor,
        flat_addresses: torch.Tensor,
        token_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The update (B, T, hc, D) to add to the streams ``hidden`` (B, T, hc, D)."""
        memory = self.table.lookup(flat_addresses).flatten(-2).to(self.wkv.weight.dtype)
        key, value = self.wkv(memory).split([self.hc_mult * self.hidden, self.hidden], dim=-1)
        wide = torch.promote_types(hidden.dtype, torch.float32)  # the gate runs in fp32 at least
        key = key.to(wide).unflatten(-1, (self.hc_mult, self.hidden))
        h = hidden.to(wide)
        rstd = torch.rsqrt(h.square().mean(-1) + self.eps) * torch.rsqrt(
            key.square().mean(-1) + self.eps
        )
        weight = self.q_weight.to(wide) * self.k_weight.to(wide)
        dot = (h * weight * key).sum(-1) * rstd * self.hidden**-0.5
        gate = torch.sigmoid(torch.copysign(dot.abs().clamp_min(1e-6).sqrt(), dot))
        if token_mask is not None:
            gate = gate * token_mask.unsqueeze(-1).to(gate.dtype)
        return (gate.unsqueeze(-1) * value.to(wide).unsqueeze(-2)).to(hidden.dtype)
