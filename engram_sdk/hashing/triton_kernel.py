"""One fused Triton kernel for N-gram addressing on CUDA (int32 or int64 out).

Each program handles ``BLOCK`` positions of one row: it loads the ids it needs once,
builds every order's mix in registers and writes a (BLOCK, heads) tile of addresses in one
coalesced store. The modulus is the exact float64-reciprocal remainder of
:mod:`engram_sdk.hashing.torch_kernel`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _addresses_kernel(
    ids_ptr,
    out_ptr,
    mult_ptr,
    primes_ptr,
    inv_ptr,
    offs_ptr,
    order_ptr,
    row_len,
    n_out,
    start,
    pad_id,
    MAX_N: tl.constexpr,
    BLOCK_DEAD: tl.constexpr,
    HEADS: tl.constexpr,
    HEADS_P2: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(1)
    pos = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = pos < n_out
    t = pos + start
    base = ids_ptr + row.to(tl.int64) * row_len
    head = tl.arange(0, HEADS_P2)
    head_ok = head < HEADS
    primes = tl.load(primes_ptr + head, mask=head_ok, other=1)
    inv = tl.load(inv_ptr + head, mask=head_ok, other=1.0)
    offs = tl.load(offs_ptr + head, mask=head_ok, other=0)
    order = tl.load(order_ptr + head, mask=head_ok, other=-1)  # n - 2 of each head

    x = tl.load(base + t, mask=valid, other=0).to(tl.int64)
    if BLOCK_DEAD:  # a DEAD id (-1) and everything behind it hash as pad_id
        blocked = x == -1
        x = tl.where(blocked, pad_id, x)
    mix = x * tl.load(mult_ptr)
    sel = tl.zeros((BLOCK, HEADS_P2), dtype=tl.int64)
    for k in tl.static_range(1, MAX_N):
        src = t - k
        xk = tl.load(base + src, mask=valid & (src >= 0), other=pad_id).to(tl.int64)
        if BLOCK_DEAD:
            blocked = blocked | (xk == -1)
            xk = tl.where(blocked, pad_id, xk)
        mix = mix ^ (xk * tl.load(mult_ptr + k))
        sel = tl.where(order[None, :] == k - 1, mix[:, None], sel)

    p = primes[None, :]
    q = (sel.to(tl.float64) * inv[None, :]).to(tl.int64)
    r = sel - q * p
    r = tl.where(r < 0, r + p, r)
    r = tl.where(r < 0, r + p, r)
    r = tl.where(r >= p, r - p, r)
    r = tl.where(r >= p, r - p, r)
    r = r + offs[None, :]
    dst = out_ptr + (row.to(tl.int64) * n_out + pos)[:, None] * HEADS + head[None, :]
    tl.store(dst, r.to(out_ptr.dtype.element_ty), mask=valid[:, None] & head_ok[None, :])


def addresses_triton(
    ids: torch.Tensor,
    multipliers: torch.Tensor,
    primes: torch.Tensor,
    inv_primes: torch.Tensor,
    offsets: torch.Tensor,
    head_order: torch.Tensor,
    pad_id: int,
    prefix: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.int32,
    block: int = 256,
    block_dead: bool = False,
) -> torch.Tensor:
    """Addresses (B, T, heads) of CUDA ids (B, T); every prime must be >= 4096.

    ``primes``, ``inv_primes``, ``offsets`` and ``head_order`` are flat per head (int64,
    float64, int64, int32) on the ids' device; ``offsets`` may be zeros. ``block_dead``:
    ids equal to -1 end the look-back (see :class:`~engram_sdk.hashing.NgramConfig`).
    """
    max_n = multipliers.numel()
    start = 0
    if prefix is not None and max_n > 1:
        from engram_sdk.hashing.torch_kernel import with_context

        ids = with_context(ids.to(torch.int64), prefix, max_n - 1, pad_id)
        start = max_n - 1
    ids = ids.contiguous()
    batch, row_len = ids.shape
    n_out = row_len - start
    heads = primes.numel()
    out = torch.empty((batch, n_out, heads), dtype=out_dtype, device=ids.device)
    if n_out == 0 or batch == 0:
        return out
    grid = (triton.cdiv(n_out, block), batch)
    _addresses_kernel[grid](
        ids,
        out,
        multipliers,
        primes,
        inv_primes,
        offsets,
        head_order,
        row_len,
        n_out,
        start,
        pad_id,
        MAX_N=max_n,
        BLOCK_DEAD=block_dead,
        HEADS=heads,
        HEADS_P2=triton.next_power_of_2(heads),
        BLOCK=block,
    )
    return out
