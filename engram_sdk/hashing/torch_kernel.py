"""The address function in torch, for CPU and CUDA; identical results to the numpy kernel."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def with_context(
    ids: torch.Tensor, prefix: torch.Tensor | None, context: int, pad_id: int
) -> torch.Tensor:
    """``ids`` (B, T) with ``context`` columns in front: the prefix's last ids, else pad."""
    if prefix is None or context == 0:
        return F.pad(ids, (context, 0), value=pad_id)
    tail = prefix.to(device=ids.device, dtype=torch.int64)[:, -context:]
    tail = F.pad(tail, (context - tail.shape[1], 0), value=pad_id)
    return torch.cat([tail, ids], dim=1)


DEAD_ID = -1


def ngram_mixes(
    padded: torch.Tensor, multipliers: list[int], max_n: int, dead_pad: int | None = None
) -> list[torch.Tensor]:
    """Pre-modulus mix of every order 2..max_n, each (B, T) int64.

    With ``dead_pad`` set, a DEAD_ID (-1) id and every id behind it count as ``dead_pad``.
    """
    context = max_n - 1
    length = padded.shape[1] - context
    current = padded[:, context:]
    blocked = None if dead_pad is None else current == DEAD_ID
    if blocked is not None:
        current = torch.where(blocked, dead_pad, current)
    mix = current * multipliers[0]
    mixes = []
    for k in range(1, max_n):
        shifted = padded[:, context - k : context - k + length]
        if blocked is not None:
            blocked = blocked | (shifted == DEAD_ID)
            shifted = torch.where(blocked, dead_pad, shifted)
        mix = torch.bitwise_xor(mix, shifted * multipliers[k])
        mixes.append(mix)
    return mixes


# Smallest modulus for which the float64-reciprocal remainder below is exact after two
# corrections: |q - floor(x / p)| <= 2 whenever x < 2**63 and p >= 4096.
FAST_REMAINDER_MIN_PRIME = 4096


def remainder_by_reciprocal(x: torch.Tensor, p: torch.Tensor, inv_p: torch.Tensor) -> torch.Tensor:
    """``x % p`` for 0 <= x < 2**63 and 4096 <= p < 2**31, via a float64 quotient estimate.

    Integer 64-bit division is emulated on GPUs; one float64 multiply, one integer
    multiply-subtract and four compare-selects are far cheaper and give the exact result.
    """
    q = (x.to(torch.float64) * inv_p).to(torch.int64)
    r = x - q * p
    r = torch.where(r < 0, r + p, r)
    r = torch.where(r < 0, r + p, r)
    r = torch.where(r >= p, r - p, r)
    return torch.where(r >= p, r - p, r)


def addresses(
    ids: torch.Tensor,
    multipliers: list[int],
    primes: torch.Tensor,
    pad_id: int,
    prefix: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.int64,
    inv_primes: torch.Tensor | None = None,
    block_dead: bool = False,
) -> torch.Tensor:
    """Addresses (B, T, heads_total); ``primes`` is (orders, heads) int64 on ids' device.

    With ``inv_primes`` (1 / primes in float64; every prime >= FAST_REMAINDER_MIN_PRIME) the
    modulus uses :func:`remainder_by_reciprocal` instead of integer division.
    """
    ids = ids.to(torch.int64)
    max_n = len(multipliers)
    padded = with_context(ids, prefix, max_n - 1, pad_id)
    dead_pad = pad_id if block_dead else None
    mixes = torch.stack(ngram_mixes(padded, multipliers, max_n, dead_pad), dim=-1)[
        ..., None
    ]  # (B, T, orders, 1)
    if inv_primes is None:
        out = torch.remainder(mixes, primes)
    else:
        out = remainder_by_reciprocal(mixes, primes, inv_primes)
    return out.flatten(-2).to(out_dtype)


_compiled = None


def addresses_compiled(*args, **kwargs) -> torch.Tensor:
    """:func:`addresses` fused by ``torch.compile`` (one kernel on CUDA)."""
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(addresses, dynamic=True, fullgraph=True)
    return _compiled(*args, **kwargs)
