"""DSA's lightning indexer, built as DeepSeek-V3.2-Exp builds it.

I[t, s] = Σ_h w_h(t) · relu(q_h(t) · k(s)), with queries read from the query latent (the
output of ``q_norm``; ``x`` when the model has no query bottleneck), one key per position
shared by all index heads (``wk`` then LayerNorm), RoPE on the first ``qk_rope_head_dim``
channels of both, and per-head weights ``weights_proj(x) · H^-½ · d^-½``. DeepSeek rotates q
and k by a Hadamard transform before FP8 quantisation; a rotation leaves q · k unchanged,
so in higher precision it is left out.
"""

from __future__ import annotations

import torch
from engram_sdk.model.config import ModelConfig
from torch import nn


def rope_rows(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, T, [H,] d) by per-row rotations ``rot`` (B, T, d/2), pairs interleaved."""
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    r = rot[:, :, None] if z.dim() == 4 else rot
    return torch.view_as_real(z * r).flatten(-2).to(x.dtype)


class Indexer(nn.Module):
    """The lightning indexer (see the module docstring)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.index_head_dim < cfg.qk_rope_head_dim:
            raise ValueError(
                f"index_head_dim ({cfg.index_head_dim}) must be >= qk_rope_head_dim "
                f"({cfg.qk_rope_head_dim})"
            )
        self.n_heads, self.head_dim, self.rope_dim = (
            cfg.index_n_heads,
            cfg.index_head_dim,
            cfg.qk_rope_head_dim,
        )
        source = cfg.q_lora_rank if cfg.q_lora_rank > 0 else cfg.dim
        self.wq_b = nn.Linear(source, cfg.index_n_heads * cfg.index_head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.index_head_dim, bias=False)
        self.k_norm = nn.LayerNorm(cfg.index_head_dim)
        self.weights_proj = nn.Linear(cfg.dim, cfg.index_n_heads, bias=False)
        self.weight_scale = cfg.index_n_heads**-0.5 * cfg.index_head_dim**-0.5

    def _rotate(self, x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        pe, rest = x.split([self.rope_dim, self.head_dim - self.rope_dim], dim=-1)
        return torch.cat([rope_rows(pe, rot), rest], dim=-1)

    def keys(self, x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        """Index keys (B, T, d) of hidden states x (B, T, D) at rotations ``rot``."""
        k = self.wk(x)
        return self._rotate(self.k_norm(k).to(k.dtype), rot)  # autocast: norms run in fp32

    def queries(
        self, x: torch.Tensor, q_latent: torch.Tensor | None, rot: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Index queries (B, T, H, d) and head weights (B, T, H)."""
        b, t, _ = x.shape
        source = q_latent if q_latent is not None else x
        q = self.wq_b(source).view(b, t, self.n_heads, self.head_dim)
        return self._rotate(q, rot), self.weights_proj(x) * self.weight_scale
