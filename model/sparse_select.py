"""Row-wise selection on the GPU without a sort: the k-th largest value, and a top-k pick.

Both search the k-th largest value of a row bit by bit on the float's *ordered key* (its
bits mapped to an int32 whose order is the floats' order): the sign first, then 31 bits from
the highest, each step keeping the bit if at least k elements of the row still reach the
key built so far. That is 32 counts over a row held in registers (4K-16K values): no sort,
no histogram in memory, one program a row. ``torch.topk`` on (rows × 4K) runs a multi-pass
radix select with several kernels and a workspace; this is one kernel.

- :func:`kth_largest_triton`: τ, the k-th largest of each row (the threshold of
  :mod:`engram_sdk.model.sparse_threshold`, from the per-group maxima);
- :func:`topk_pick_triton`: the indices (from a companion index tensor) of each row's k
  largest values, in no set order: the values above the k-th largest, then ties to fill k.
  ``-inf`` entries give ``EMPTY``.

Ordered keys tell -0.0 below +0.0; the floats are equal, so either pick is a valid top-k.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

MAX_ROW = 16384  # longest row a program holds in registers


@triton.jit
def _ordered_key(x):
    """int32 keys whose signed order is the order of the float32 values ``x``."""
    bits = x.to(tl.int32, bitcast=True)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@triton.jit
def _kth_key(key, valid, K):
    """Per row, the ordered key of the K-th largest ``valid`` ``key`` (sign, then 31 bits)."""
    n0 = tl.sum((valid & (key >= 0)).to(tl.int32), axis=1)
    ans = tl.where(n0 >= K, 0, -2147483647 - 1)
    for i in tl.static_range(31):
        cand = ans | (1 << (30 - i))
        n = tl.sum((valid & (key >= cand[:, None])).to(tl.int32), axis=1)
        ans = tl.where(n >= K, cand, ans)
    return ans


@triton.jit
def _load_rows(x_ptr, R, N, stride_row, ROWS: tl.constexpr, BLOCK: tl.constexpr):
    """(ROWS, BLOCK) of rows from ``program_id · ROWS`` on: values, their row ids, validity."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    offs = tl.arange(0, BLOCK)
    valid = (rows[:, None] < R) & (offs[None, :] < N)
    where = rows[:, None].to(tl.int64) * stride_row + offs[None, :]
    return tl.load(x_ptr + where, mask=valid, other=float("-inf")), rows, valid


@triton.jit
def _kth_largest_kernel(
    x_ptr, out_ptr, R, N, K, stride_row, ROWS: tl.constexpr, BLOCK: tl.constexpr
):  # fmt: skip
    x, rows, valid = _load_rows(x_ptr, R, N, stride_row, ROWS, BLOCK)
    ans = _kth_key(_ordered_key(x), valid, K)
    value = (ans ^ ((ans >> 31) & 0x7FFFFFFF)).to(tl.float32, bitcast=True)
    tl.store(out_ptr + rows, value, mask=rows < R)


@triton.jit
def _topk_pick_kernel(
    x_ptr, idx_ptr, out_ptr, R, N, K, stride_row, stride_idx, EMPTY_ID,
    ROWS: tl.constexpr, BLOCK: tl.constexpr, KB: tl.constexpr,
):  # fmt: skip
    x, rows, valid = _load_rows(x_ptr, R, N, stride_row, ROWS, BLOCK)
    key = _ordered_key(x)
    kth = _kth_key(key, valid, K)
    above = (valid & (key > kth[:, None])).to(tl.int32)
    tie = (valid & (key == kth[:, None])).to(tl.int32)
    n_above = tl.sum(above, axis=1)
    slot = tl.where(above > 0, tl.cumsum(above, axis=1) - above,
                    n_above[:, None] + tl.cumsum(tie, axis=1) - tie)  # fmt: skip
    take = ((above > 0) | (tie > 0)) & (slot < K)
    offs = tl.arange(0, BLOCK)
    ids = tl.load(idx_ptr + rows[:, None].to(tl.int64) * stride_idx + offs[None, :],
                  mask=valid, other=0)  # fmt: skip
    ids = tl.where(x == float("-inf"), EMPTY_ID, ids.to(tl.int64))
    out = out_ptr + rows[:, None].to(tl.int64) * K
    tl.store(out + slot, ids, mask=take)
    ks = tl.arange(0, KB)[None, :]  # a row with fewer than K entries: the rest EMPTY
    fill = (rows[:, None] < R) & (ks >= N) & (ks < K)
    tl.store(out + ks, tl.zeros((ROWS, KB), tl.int64) + EMPTY_ID, mask=fill)


def _rows_per_program(rows: int, n: int) -> int:
    """One row a program on a GPU; interpreted, many (each program costs Python calls)."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        return 1
    return min(triton.next_power_of_2(rows), max(1, 2**16 // triton.next_power_of_2(n)))


def _rows(x: torch.Tensor) -> torch.Tensor:
    x = x.reshape(-1, x.shape[-1])
    return x if x.stride(-1) == 1 else x.contiguous()


def kth_largest_triton(x: torch.Tensor, k: int, num_warps: int = 8) -> torch.Tensor:
    """The k-th largest value of each row of ``x`` (..., N) float32 → (...) float32.

    ``N`` ≤ :data:`MAX_ROW`, ``1 <= k <= N``. Exact (it is one of the row's values).
    """
    n = x.shape[-1]
    if not 1 <= k <= n or n > MAX_ROW:
        raise ValueError(f"need 1 <= k <= N <= {MAX_ROW}, got k={k}, N={n}")
    rows = _rows(x.float())
    r = rows.shape[0]
    per = _rows_per_program(r, n)
    out = torch.empty(r, device=x.device, dtype=torch.float32)
    _kth_largest_kernel[(triton.cdiv(r, per),)](
        rows, out, r, n, k, rows.stride(0), ROWS=per, BLOCK=triton.next_power_of_2(n),
        num_warps=num_warps,
    )  # fmt: skip
    return out.view(x.shape[:-1])


def topk_pick_triton(
    values: torch.Tensor, indices: torch.Tensor, k: int, empty: int, num_warps: int = 8
) -> torch.Tensor:
    """``indices`` at each row's k largest ``values`` (..., N), in no set order → (..., k)
    int64; ``empty`` where the value is -inf or the row has fewer than k entries."""
    n = values.shape[-1]
    if k < 1 or n > MAX_ROW:
        raise ValueError(f"need k >= 1 and N <= {MAX_ROW}, got k={k}, N={n}")
    rows, ids = _rows(values.float()), _rows(indices)
    r = rows.shape[0]
    per = _rows_per_program(r, max(n, k))
    out = torch.empty(r, k, device=values.device, dtype=torch.int64)
    _topk_pick_kernel[(triton.cdiv(r, per),)](
        rows, ids, out, r, n, k, rows.stride(0), ids.stride(0), empty, ROWS=per,
        BLOCK=triton.next_power_of_2(n), KB=triton.next_power_of_2(k), num_warps=num_warps,
    )  # fmt: skip
    return out.view(*values.shape[:-1], k)
