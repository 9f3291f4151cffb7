"""The low-precision rounding DeepSeek-V4.1 applies inside its attention (part of the model:
it was trained with it, so it runs even when the weights are float32).

Every vector is cut into blocks of the last dimension; each block is divided by a scale,
rounded onto a small float grid and multiplied back. A vector whose length is not a whole
number of blocks passes unchanged (tiny test shapes).

* window KV: FP8 E4M3, blocks of 32, power-of-two scales (E8M0);
* compressed KV: FP4 E2M1, blocks of 16, E4M3 scales;
* indexer queries and keys: FP4 E2M1, blocks of 32, power-of-two scales.
"""

from __future__ import annotations

import torch

E4M3_MAX = 448.0
E2M1_MAX = 6.0
# E2M1's non-negative values, in code order 0..7
E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def pow2_at_least(t: torch.Tensor) -> torch.Tensor:
    """2**ceil(log2(t)) for positive normal float32 t, exactly (from frexp, no log)."""
    mantissa, exponent = torch.frexp(t.float())  # t = mantissa * 2**exponent, mantissa in [.5, 1)
    return torch.ldexp(torch.ones_like(mantissa), exponent - (mantissa == 0.5).to(exponent.dtype))


def _blocks(x: torch.Tensor, size: int) -> torch.Tensor | None:
    n = x.shape[-1]
    return None if n % size else x.float().unflatten(-1, (n // size, size))


def fp8_round(x: torch.Tensor, block: int = 32) -> torch.Tensor:
    """x rounded through E4M3 with one power-of-two scale per ``block`` channels."""
    blocks = _blocks(x, block)
    if blocks is None:
        return x
    scale = pow2_at_least(blocks.abs().amax(-1, keepdim=True).clamp_min(1e-4) / E4M3_MAX)
    q = (blocks / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn).float()
    return (q * scale).flatten(-2).to(x.dtype)


def e2m1_round(q: torch.Tensor) -> torch.Tensor:
    """Round float32 values in [-6, 6] to the nearest E2M1 value, ties to the even code."""
    grid = torch.tensor(E2M1_GRID, device=q.device)
    mids = (grid[1:] + grid[:-1]) / 2
    magnitude = q.abs().unsqueeze(-1)
    # between codes k and k+1 a tie goes to the even one: down when k is even, up when odd
    odd_lower = torch.arange(7, device=q.device) % 2 == 1
    code = torch.where(odd_lower, magnitude >= mids, magnitude > mids).sum(-1)
    value = grid[code]
    return torch.where(torch.signbit(q), -value, value)


def fp4_round(x: torch.Tensor, block: int, e4m3_scales: bool = False) -> torch.Tensor:
    """x rounded through E2M1 with one scale per ``block`` channels (E4M3 or power of two)."""
    blocks = _blocks(x, block)
    if blocks is None:
        return x
    amax = blocks.abs().amax(-1, keepdim=True)
    if e4m3_scales:
        scale = (amax.clamp_min(E2M1_MAX * 2.0**-9) / E2M1_MAX).to(torch.float8_e4m3fn).float()
    else:
        scale = pow2_at_least(amax.clamp_min(E2M1_MAX * 2.0**-126) / E2M1_MAX)
    q = e2m1_round((blocks / scale).clamp(-E2M1_MAX, E2M1_MAX))
    return (q * scale).flatten(-2).to(x.dtype)
