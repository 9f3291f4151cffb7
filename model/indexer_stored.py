"""Single-pass threshold top-k: the indexer's scores computed once, selected from memory.

The threshold path of :mod:`engram_sdk.model.indexer_triton` scores every (query, key) pair
twice (group maxima, then collect at the threshold): its second pass costs three times the
first, for its compaction. Here one scoring kernel writes a query chunk's scores (float32)
*and* each query's maximum per group of keys; the threshold τ (the k-th largest maximum,
at most the k-th largest score) then picks candidates in a memory-bound pass over the
written scores, with no scoring at all. A query chunk's scores are bounded by the caller
(``elements``), so memory stays O(chunk · S) however long the context.

A row whose candidates overflow the buffer takes ``topk`` of its written scores: no rescoring.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from engram_sdk.model.indexer_triton import (
    BLOCK_S,
    _block_d,
    _head_rows,
    _prepare,
    _scores,
    _strides,
    _tile_is_hidden,
)

SELECT_BLOCK = 2048  # written scores one select program reads


@triton.jit
def _scores_and_group_max_kernel(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, out_ptr, max_ptr,
    T, S, H, D, window, NG,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    stride_ob, stride_ot, stride_mb, stride_mt,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, GROUP: tl.constexpr,
    HP: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    t0 = tl.program_id(1) * BLOCK_T
    ts = t0 + tl.arange(0, BLOCK_T)
    tile = tl.program_id(2)
    ss = tile * BLOCK_S + tl.arange(0, BLOCK_S)
    gs = tile * (BLOCK_S // GROUP) + tl.arange(0, BLOCK_S // GROUP)
    where = max_ptr + b * stride_mb + ts[:, None] * stride_mt + gs[None, :]
    inside = (ts[:, None] < T) & (gs[None, :] < NG)
    out = out_ptr + b * stride_ob + ts[:, None] * stride_ot + ss[None, :]
    written = (ts[:, None] < T) & (ss[None, :] < S)
    if _tile_is_hidden(qpos_ptr, kpos_ptr, b, ts, ss, T, S, stride_pb):
        tl.store(out, tl.full((BLOCK_T, BLOCK_S), float("-inf"), tl.float32), mask=written)
        hidden = tl.full((BLOCK_T, BLOCK_S // GROUP), float("-inf"), tl.float32)
        tl.store(where, hidden, mask=inside)
    else:
        acc = _scores(
            q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, b, t0, ss, T, S, H, D, window,
            stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks,
            stride_pb, BLOCK_T, BLOCK_S, BLOCK_D, HP,
        )  # fmt: skip
        tl.store(out, acc, mask=written)
        best = tl.max(tl.reshape(acc, (BLOCK_T, BLOCK_S // GROUP, GROUP)), axis=2)
        tl.store(where, best, mask=inside)


@triton.jit
def _scores_and_group_max_loop_kernel(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, out_ptr, max_ptr,
    T, S, H, D, window, NG,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    stride_ob, stride_ot, stride_mb, stride_mt,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, GROUP: tl.constexpr,
    TILES: tl.constexpr, STAGES: tl.constexpr,
):  # fmt: skip
    """As ``_scores_and_group_max_kernel``, ``TILES`` key tiles a program in a pipelined
    loop (loads of the next tile overlap the current one's math); no hidden-tile branch."""
    b = tl.program_id(0)
    t0 = tl.program_id(1) * BLOCK_T
    ts = t0 + tl.arange(0, BLOCK_T)
    for j in tl.range(0, TILES, num_stages=STAGES):
        tile = tl.program_id(2) * TILES + j
        ss = tile * BLOCK_S + tl.arange(0, BLOCK_S)
        gs = tile * (BLOCK_S // GROUP) + tl.arange(0, BLOCK_S // GROUP)
        acc = _scores(
            q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, b, t0, ss, T, S, H, D, window,
            stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks,
            stride_pb, BLOCK_T, BLOCK_S, BLOCK_D, 0,
        )  # fmt: skip
        out = out_ptr + b * stride_ob + ts[:, None] * stride_ot + ss[None, :]
        tl.store(out, acc, mask=(ts[:, None] < T) & (ss[None, :] < S))
        best = tl.max(tl.reshape(acc, (BLOCK_T, BLOCK_S // GROUP, GROUP)), axis=2)
        where = max_ptr + b * stride_mb + ts[:, None] * stride_mt + gs[None, :]
        tl.store(where, best, mask=(ts[:, None] < T) & (gs[None, :] < NG))


@triton.jit
def _select_kernel(
    scores_ptr, tau_ptr, count_ptr, cand_ptr, cand_idx_ptr, S, C, stride_row,
    BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0)
    ss = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    tau = tl.load(tau_ptr + row)
    x = tl.load(scores_ptr + row.to(tl.int64) * stride_row + ss, mask=ss < S, other=float("-inf"))
    keep = (x >= tau) & (x > float("-inf"))
    keep_n = keep.to(tl.int32)
    n = tl.sum(keep_n, axis=0)
    if n > 0:
        base = tl.atomic_add(count_ptr + row, n)
        slot = base + tl.cumsum(keep_n, axis=0) - keep_n
        ok = keep & (slot < C)
        where = row.to(tl.int64) * C + slot
        tl.store(cand_ptr + where, x, mask=ok)
        tl.store(cand_idx_ptr + where, ss, mask=ok)


@triton.jit
def _select_groups_kernel(
    scores_ptr, maxima_ptr, tau_ptr, count_ptr, cand_ptr, cand_idx_ptr,
    S, C, stride_row, stride_mrow,
    GROUP: tl.constexpr, GB: tl.constexpr,
):  # fmt: skip
    """As ``_select_kernel``, reading only groups whose maximum reaches τ (the rest hold no
    candidate); slots by a running sum over groups, then within each group."""
    row = tl.program_id(0)
    gs = tl.program_id(1) * GB + tl.arange(0, GB)
    tau = tl.load(tau_ptr + row)
    best = tl.load(maxima_ptr + row.to(tl.int64) * stride_mrow + gs, mask=gs * GROUP < S,
                   other=float("-inf"))  # fmt: skip
    live = best >= tau
    if tl.sum(live.to(tl.int32), axis=0) > 0:
        ss = gs[:, None] * GROUP + tl.arange(0, GROUP)[None, :]
        x = tl.load(scores_ptr + row.to(tl.int64) * stride_row + ss,
                    mask=live[:, None] & (ss < S), other=float("-inf"))  # fmt: skip
        keep = (x >= tau) & (x > float("-inf"))
        keep_n = keep.to(tl.int32)
        per_group = tl.sum(keep_n, axis=1)
        base = tl.atomic_add(count_ptr + row, tl.sum(per_group, axis=0))
        first = base + tl.cumsum(per_group, axis=0) - per_group
        slot = first[:, None] + tl.cumsum(keep_n, axis=1) - keep_n
        ok = keep & (slot < C)
        where = row.to(tl.int64) * C + slot
        tl.store(cand_ptr + where, x, mask=ok)
        tl.store(cand_idx_ptr + where, ss, mask=ok)


def scores_and_group_max_triton(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    group: int,
    stacked: bool = False,
    block_t: int | None = None,
    num_warps: int = 4,
    block_s: int = BLOCK_S,
    tiles_per_program: int = 1,
    stages: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every score (B, T, S) float32 (-inf where not visible) and each query's maximum per
    ``group`` consecutive keys (B, T, ceil(S / block_s) · block_s / group), from one pass.

    ``block_t`` queries × ``block_s`` keys a program (64 × 128 by default; a dot per
    head), ``num_warps`` its warps; ``tiles_per_program`` > 1: that many key tiles a
    program in a loop pipelined over ``stages``.
    """
    if group < 1 or group > block_s or group & (group - 1):
        raise ValueError(f"group must be a power of two <= {block_s}, got {group}")
    b, t, h, d = q.shape
    s = keys.shape[1]
    q, weights, keys, query_pos, key_pos = _prepare(q, weights, keys, query_pos, key_pos)
    tiles = triton.cdiv(s, block_s)
    out = torch.empty(b, t, s, device=q.device, dtype=torch.float32)
    maxima = torch.empty(b, t, tiles * block_s // group, device=q.device, dtype=torch.float32)
    hp, rows = _head_rows(h, stacked)
    block_t = block_t if block_t and not hp else rows
    if tiles_per_program > 1 and not hp:  # a pipelined loop over key tiles
        grid = (b, triton.cdiv(t, block_t), triton.cdiv(tiles, tiles_per_program))
        _scores_and_group_max_loop_kernel[grid](
            q, weights, keys, query_pos, key_pos, out, maxima, t, s, h, d, 0, maxima.shape[-1],
            *_strides(q, weights, keys, query_pos), out.stride(0), out.stride(1),
            maxima.stride(0), maxima.stride(1),
            BLOCK_T=block_t, BLOCK_S=block_s, BLOCK_D=_block_d(d), GROUP=group,
            TILES=tiles_per_program, STAGES=stages, num_warps=num_warps,
        )  # fmt: skip
        return out, maxima
    grid = (b, triton.cdiv(t, block_t), tiles)
    _scores_and_group_max_kernel[grid](
        q, weights, keys, query_pos, key_pos, out, maxima, t, s, h, d, 0, maxima.shape[-1],
        *_strides(q, weights, keys, query_pos), out.stride(0), out.stride(1),
        maxima.stride(0), maxima.stride(1),
        BLOCK_T=block_t, BLOCK_S=block_s, BLOCK_D=_block_d(d), GROUP=group, HP=hp,
        num_warps=num_warps,
    )  # fmt: skip
    return out, maxima


def select_triton(
    scores: torch.Tensor,
    tau: torch.Tensor,
    capacity: int,
    block: int = SELECT_BLOCK,
    num_warps: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's finite scores ≥ its threshold ``tau`` (B, T), in no set order.

    scores (B, T, S) float32, contiguous → candidate scores (B, T, capacity) (-inf in unused
    slots), their key indices (B, T, capacity) int32, and how many qualified (B, T) int32
    (more than ``capacity``: that row overflowed and its candidates are incomplete).
    ``block``: scores a program reads (a power of two), ``num_warps`` its warps.
    """
    b, t, s = scores.shape
    scores = scores.contiguous()
    tau = tau.float().contiguous()
    count = torch.zeros(b, t, device=scores.device, dtype=torch.int32)
    cand = torch.full((b, t, capacity), float("-inf"), device=scores.device)
    cand_idx = torch.zeros(b, t, capacity, device=scores.device, dtype=torch.int32)
    grid = (b * t, triton.cdiv(s, block))
    _select_kernel[grid](
        scores, tau, count, cand, cand_idx, s, capacity, s, BLOCK=block, num_warps=num_warps
    )
    return cand, cand_idx, count


def select_groups_triton(
    scores: torch.Tensor,
    maxima: torch.Tensor,
    tau: torch.Tensor,
    capacity: int,
    group: int,
    block: int = SELECT_BLOCK,
    num_warps: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`select_triton`, reading only the groups of ``group`` keys whose maximum
    (``maxima`` (B, T, ≥ S / group), from the same scoring pass) reaches ``tau``."""
    b, t, s = scores.shape
    scores, maxima = scores.contiguous(), maxima.contiguous()
    tau = tau.float().contiguous()
    count = torch.zeros(b, t, device=scores.device, dtype=torch.int32)
    cand = torch.full((b, t, capacity), float("-inf"), device=scores.device)
    cand_idx = torch.zeros(b, t, capacity, device=scores.device, dtype=torch.int32)
    per_program = max(1, block // group)
    grid = (b * t, triton.cdiv(triton.cdiv(s, group), per_program))
    _select_groups_kernel[grid](
        scores, maxima, tau, count, cand, cand_idx, s, capacity, s, maxima.shape[-1],
        GROUP=group, GB=per_program, num_warps=num_warps,
    )  # fmt: skip
    return cand, cand_idx, count


SCORE_VARIANTS = {  # (queries, keys, warps, key tiles, stages): picked by timing on CUDA
    "64x128, 4 warps": (64, 128, 4, 1, 1),
    "64x128, 8 warps": (64, 128, 8, 1, 1),
    "128x128, 8 warps": (128, 128, 8, 1, 1),
    "64x256, 8 warps": (64, 256, 8, 1, 1),
    "64x128, 4 warps, 8 tiles, 3 stages": (64, 128, 4, 8, 3),
    "64x128, 4 warps, 4 tiles, 2 stages": (64, 128, 4, 4, 2),
}
SELECT_VARIANTS = {
    "2048, 4 warps": (2048, 4),
    "1024, 4 warps": (1024, 4),
    "4096, 8 warps": (4096, 8),
}


def stored_scores(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    group: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`scores_and_group_max_triton` by its fastest tile shape (picked on first use:
    make that a full-size chunk, e.g. ``benchmarks/long_context_phases.warm_groups``)."""
    from engram_sdk.model.indexer_triton import fastest

    args = (q, weights, keys, query_pos, key_pos, group)
    return fastest(
        ("stored scores", *q.shape[2:]),
        {
            name: lambda bt=bt, bs=bs, nw=nw, tp=tp, st=st: scores_and_group_max_triton(
                *args, block_t=bt, num_warps=nw, block_s=bs, tiles_per_program=tp, stages=st
            )
            for name, (bt, bs, nw, tp, st) in SCORE_VARIANTS.items()
        },
    )


def select(
    scores: torch.Tensor,
    tau: torch.Tensor,
    capacity: int,
    maxima: torch.Tensor | None = None,
    group: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`select_triton` by its fastest block, or (given the ``maxima`` of ``group``
    keys) :func:`select_groups_triton`, whichever timed fastest (picked on first use)."""
    from engram_sdk.model.indexer_triton import fastest

    variants = {
        name: lambda bl=bl, nw=nw: select_triton(scores, tau, capacity, bl, nw)
        for name, (bl, nw) in SELECT_VARIANTS.items()
    }
    if maxima is not None:
        for name, (bl, nw) in SELECT_VARIANTS.items():
            variants[f"live groups, {name}"] = lambda bl=bl, nw=nw: select_groups_triton(
                scores, maxima, tau, capacity, group, bl, nw
            )
    return fastest(("select", maxima is not None), variants)
