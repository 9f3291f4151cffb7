"""Indexer kernels for up to four heads with the queries held across a loop of key tiles.

The generic kernels (:mod:`engram_sdk.model.indexer_triton`) load each head's queries again
for every 128-key tile: four dependent global loads a tile, each waited on before its
product. With at most four heads (``small`` and ``base`` have four) a program loads its
queries and head weights once, then walks ``TILES`` key tiles in a pipelined loop; each
tile costs one key load and four products. Missing heads (H < 4) get zero queries and
weights, which add exactly 0. The per-head arithmetic is the generic kernels' (the same
product, ``relu``, multiply-add order), so scores agree with theirs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from engram_sdk.model.indexer_triton import BLOCK_S, _block_d, _prepare, _strides


@triton.jit
def _head(q_ptr, w_ptr, b, ts, d, h, T, H, D, stride_qb, stride_qt, stride_qh, stride_wb,
          stride_wt):  # fmt: skip
    """One head's (BLOCK_T, BLOCK_D) queries and (BLOCK_T,) float32 weights (0 past H)."""
    live = (ts < T) & ((tl.zeros_like(ts) + h) < H)
    q = tl.load(
        q_ptr + b * stride_qb + ts[:, None] * stride_qt + h * stride_qh + d[None, :],
        mask=live[:, None] & (d[None, :] < D),
        other=0.0,
    )
    w = tl.load(w_ptr + b * stride_wb + ts * stride_wt + h, mask=live, other=0.0)
    return q, w.to(tl.float32)


@triton.jit
def _masked(acc, qpos, kpos, SKIP_FULL: tl.constexpr):
    """Scores of keys a query cannot see set to -inf; with ``SKIP_FULL`` a tile every query
    sees whole (most tiles of a long context) skips the per-score comparison."""
    if SKIP_FULL:
        if tl.max(kpos, axis=0) <= tl.min(qpos, axis=0):
            out = acc
        else:
            out = tl.where(kpos[None, :] <= qpos[:, None], acc, float("-inf"))
    else:
        out = tl.where(kpos[None, :] <= qpos[:, None], acc, float("-inf"))
    return out


@triton.jit
def _group_max_heads4_kernel(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, out_ptr,
    T, S, H, D, NG,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    stride_ob, stride_ot,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, GROUP: tl.constexpr,
    TILES: tl.constexpr, STAGES: tl.constexpr, SKIP_FULL: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    ts = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    d = tl.arange(0, BLOCK_D)
    heads = (T, H, D, stride_qb, stride_qt, stride_qh, stride_wb, stride_wt)
    q0, w0 = _head(q_ptr, w_ptr, b, ts, d, 0, *heads)
    q1, w1 = _head(q_ptr, w_ptr, b, ts, d, 1, *heads)
    q2, w2 = _head(q_ptr, w_ptr, b, ts, d, 2, *heads)
    q3, w3 = _head(q_ptr, w_ptr, b, ts, d, 3, *heads)
    qpos = tl.load(qpos_ptr + b * stride_pb + ts, mask=ts < T, other=-1)
    for j in tl.range(0, TILES, num_stages=STAGES):
        tile = tl.program_id(2) * TILES + j
        ss = tile * BLOCK_S + tl.arange(0, BLOCK_S)
        keys = tl.load(
            k_ptr + b * stride_kb + ss[:, None] * stride_ks + d[None, :],
            mask=(ss[:, None] < S) & (d[None, :] < D),
            other=0.0,
        )
        kt = tl.trans(keys)
        acc = tl.zeros((BLOCK_T, BLOCK_S), tl.float32)
        acc += tl.maximum(tl.dot(q0, kt), 0.0) * w0[:, None]
        acc += tl.maximum(tl.dot(q1, kt), 0.0) * w1[:, None]
        acc += tl.maximum(tl.dot(q2, kt), 0.0) * w2[:, None]
        acc += tl.maximum(tl.dot(q3, kt), 0.0) * w3[:, None]
        kpos = tl.load(kpos_ptr + ss, mask=ss < S, other=2**62)
        acc = _masked(acc, qpos, kpos, SKIP_FULL)
        best = tl.max(tl.reshape(acc, (BLOCK_T, BLOCK_S // GROUP, GROUP)), axis=2)
        gs = tile * (BLOCK_S // GROUP) + tl.arange(0, BLOCK_S // GROUP)
        where = out_ptr + b * stride_ob + ts[:, None] * stride_ot + gs[None, :]
        tl.store(where, best, mask=(ts[:, None] < T) & (gs[None, :] < NG))


def group_max_heads4_triton(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    group: int,
    *,
    block_t: int = 64,
    tiles_per_program: int = 8,
    stages: int = 2,
    num_warps: int = 4,
    skip_full: bool = False,
) -> torch.Tensor:
    """:func:`engram_sdk.model.indexer_triton.group_max_triton` for at most four heads,
    queries loaded once per ``block_t`` queries × ``tiles_per_program`` key tiles."""
    b, t, h, d = q.shape
    if h > 4:
        raise ValueError(f"at most 4 index heads, got {h}")
    if group < 1 or group > BLOCK_S or group & (group - 1):
        raise ValueError(f"group must be a power of two <= {BLOCK_S}, got {group}")
    s = keys.shape[1]
    q, weights, keys, query_pos, key_pos = _prepare(q, weights, keys, query_pos, key_pos)
    tiles = triton.cdiv(s, BLOCK_S)
    out = torch.empty(b, t, tiles * BLOCK_S // group, device=q.device, dtype=torch.float32)
    grid = (b, triton.cdiv(t, block_t), triton.cdiv(tiles, tiles_per_program))
    _group_max_heads4_kernel[grid](
        q, weights, keys, query_pos, key_pos, out, t, s, h, d, out.shape[-1],
        *_strides(q, weights, keys, query_pos), out.stride(0), out.stride(1),
        BLOCK_T=block_t, BLOCK_S=BLOCK_S, BLOCK_D=_block_d(d), GROUP=group,
        TILES=tiles_per_program, STAGES=stages, SKIP_FULL=skip_full, num_warps=num_warps,
    )  # fmt: skip
    return out


@triton.jit
def _collect_heads4_kernel(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, tau_ptr, count_ptr, cand_ptr, cand_idx_ptr,
    T, S, H, D, C,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, TILES: tl.constexpr,
    STAGES: tl.constexpr, PREFIX_DOT: tl.constexpr, SKIP_FULL: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    ts = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    d = tl.arange(0, BLOCK_D)
    heads = (T, H, D, stride_qb, stride_qt, stride_qh, stride_wb, stride_wt)
    q0, w0 = _head(q_ptr, w_ptr, b, ts, d, 0, *heads)
    q1, w1 = _head(q_ptr, w_ptr, b, ts, d, 1, *heads)
    q2, w2 = _head(q_ptr, w_ptr, b, ts, d, 2, *heads)
    q3, w3 = _head(q_ptr, w_ptr, b, ts, d, 3, *heads)
    qpos = tl.load(qpos_ptr + b * stride_pb + ts, mask=ts < T, other=-1)
    rows = b * T + ts
    tau = tl.load(tau_ptr + rows, mask=ts < T, other=float("inf"))
    lane = tl.arange(0, BLOCK_S)
    upper = (lane[:, None] <= lane[None, :]).to(tl.float16)  # keep @ upper = inclusive count
    for j in tl.range(0, TILES, num_stages=STAGES):
        ss = (tl.program_id(2) * TILES + j) * BLOCK_S + lane
        keys = tl.load(
            k_ptr + b * stride_kb + ss[:, None] * stride_ks + d[None, :],
            mask=(ss[:, None] < S) & (d[None, :] < D),
            other=0.0,
        )
        kt = tl.trans(keys)
        acc = tl.zeros((BLOCK_T, BLOCK_S), tl.float32)
        acc += tl.maximum(tl.dot(q0, kt), 0.0) * w0[:, None]
        acc += tl.maximum(tl.dot(q1, kt), 0.0) * w1[:, None]
        acc += tl.maximum(tl.dot(q2, kt), 0.0) * w2[:, None]
        acc += tl.maximum(tl.dot(q3, kt), 0.0) * w3[:, None]
        kpos = tl.load(kpos_ptr + ss, mask=ss < S, other=2**62)
        acc = _masked(acc, qpos, kpos, SKIP_FULL)
        keep = (acc >= tau[:, None]) & (acc > float("-inf"))
        keep_n = keep.to(tl.int32)
        n = tl.sum(keep_n, axis=1)
        if tl.sum(n, axis=0) > 0:
            base = tl.atomic_add(count_ptr + rows, n, mask=(ts < T) & (n > 0))
            if PREFIX_DOT:
                before = tl.dot(keep.to(tl.float16), upper).to(tl.int32) - keep_n
            else:
                before = tl.cumsum(keep_n, axis=1) - keep_n
            slot = base[:, None] + before
            ok = keep & (slot < C) & (ts[:, None] < T)
            where = rows[:, None].to(tl.int64) * C + slot
            tl.store(cand_ptr + where, acc, mask=ok)
            tl.store(cand_idx_ptr + where, ss[None, :] + tl.zeros_like(slot), mask=ok)


def collect_heads4_triton(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    tau: torch.Tensor,
    capacity: int,
    *,
    block_t: int = 64,
    tiles_per_program: int = 8,
    stages: int = 2,
    num_warps: int = 4,
    prefix_dot: bool = True,
    skip_full: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`engram_sdk.model.indexer_triton.collect_triton` (candidate scores, key
    indices, counts) for at most four heads, queries held across key tiles; slots along a
    row by a tensor-core prefix count (``prefix_dot``) or a scan."""
    b, t, h, d = q.shape
    if h > 4:
        raise ValueError(f"at most 4 index heads, got {h}")
    s = keys.shape[1]
    q, weights, keys, query_pos, key_pos = _prepare(q, weights, keys, query_pos, key_pos)
    tau = tau.float().contiguous()
    count = torch.zeros(b, t, device=q.device, dtype=torch.int32)
    cand = torch.full((b, t, capacity), float("-inf"), device=q.device)
    cand_idx = torch.zeros(b, t, capacity, device=q.device, dtype=torch.int32)
    tiles = triton.cdiv(s, BLOCK_S)
    grid = (b, triton.cdiv(t, block_t), triton.cdiv(tiles, tiles_per_program))
    _collect_heads4_kernel[grid](
        q, weights, keys, query_pos, key_pos, tau, count, cand, cand_idx,
        t, s, h, d, capacity, *_strides(q, weights, keys, query_pos),
        BLOCK_T=block_t, BLOCK_S=BLOCK_S, BLOCK_D=_block_d(d), TILES=tiles_per_program,
        STAGES=stages, PREFIX_DOT=prefix_dot, SKIP_FULL=skip_full, num_warps=num_warps,
    )  # fmt: skip
    return cand, cand_idx, count
