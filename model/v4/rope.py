"""V4's rotary embeddings: interleaved pairs on the trailing ``rope_head_dim`` channels."""

from __future__ import annotations

import torch
from engram_sdk.model.rope import rope_frequencies
from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.v41_config import V41Config


def v4_frequencies(cfg: V4Config | V41Config, compressed: bool) -> torch.Tensor:
    """Rotations (max_seq_len, rope_head_dim/2): plain for sliding layers, YaRN for compressed.

    Compressed layers use ``compress_rope_theta`` and YaRN without any magnitude factor
    (V4 does not scale cos/sin).
    """
    if not compressed:
        return rope_frequencies(cfg.rope_head_dim, cfg.max_seq_len, cfg.rope_theta)
    return rope_frequencies(
        cfg.rope_head_dim,
        cfg.max_seq_len,
        cfg.compress_rope_theta,
        cfg.rope_factor,
        cfg.original_seq_len,
        cfg.beta_fast,
        cfg.beta_slow,
    )


def rotate_tail(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate the trailing channels of x (B, T, [H,] D) by freqs (T, r/2), pairs interleaved."""
    rope = 2 * freqs.shape[-1]
    head, tail = x[..., :-rope], x[..., -rope:]
    z = torch.view_as_complex(tail.float().reshape(*tail.shape[:-1], rope // 2, 2))
    f = freqs.view(*freqs.shape[:-1], *([1] * (z.dim() - 3)), freqs.shape[-1])
    rotated = torch.view_as_real(z * f).flatten(-2).to(x.dtype)
    return torch.cat([head, rotated], dim=-1)
