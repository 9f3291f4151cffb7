"""Recompute-and-select top-k: no (T × S) score ever written, no ``torch.topk`` on a long row.

The indexer's FLOPs are small (``small``: ~1.8 KFLOP per (query, key) for all layers, ~2 µs
of tensor-core time per token per 1M keys); what cost time in the single pass was writing
every score, reading it back to select, and sorting. Here, per query chunk:

1. the scoring kernel keeps each query's maximum per group of keys in registers and writes
   only those (1/group of the scores);
2. τ, the k-th largest maximum (≤ the k-th largest score), by a sort-free bitwise search
   (:func:`engram_sdk.model.sparse_select.kth_largest_triton`);
3. the scores are *recomputed* (cheap) and only those ≥ τ are appended to a compact
   per-query buffer; slots come from one atomic per row and tile plus a prefix count along
   the row, taken by a tensor-core product with a triangular matrix of ones (exact: counts
   ≤ 128 in float32) instead of a scan;
4. the top-k of that buffer by the same search (:func:`topk_pick_triton`).

A row whose buffer overflows (ties at τ: e.g. a query whose head weights are all negative
scores thousands of keys exactly 0) is redone with a raised threshold τ' = the k-th largest
of what its buffer caught (still ≤ its k-th score), keys strictly above τ' collected again,
ties at τ' taken from the first buffer; rows that overflow still take the tiled path.
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


@triton.jit
def _collect_prefix_dot_kernel(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, tau_ptr, count_ptr, cand_ptr, cand_idx_ptr,
    T, S, H, D, C,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, TILES: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    t0 = tl.program_id(1) * BLOCK_T
    ts = t0 + tl.arange(0, BLOCK_T)
    rows = b * T + ts
    tau = tl.load(tau_ptr + rows, mask=ts < T, other=float("inf"))
    lane = tl.arange(0, BLOCK_S)
    upper = (lane[:, None] <= lane[None, :]).to(tl.float16)  # keep @ upper = inclusive count
    for j in range(TILES):
        ss = (tl.program_id(2) * TILES + j) * BLOCK_S + lane
        if not _tile_is_hidden(qpos_ptr, kpos_ptr, b, ts, ss, T, S, stride_pb):
            acc = _scores(
                q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, b, t0, ss, T, S, H, D, 0,
                stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks,
                stride_pb, BLOCK_T, BLOCK_S, BLOCK_D, 0,
            )  # fmt: skip
            keep = (acc >= tau[:, None]) & (acc > float("-inf"))
            keep_n = keep.to(tl.int32)
            n = tl.sum(keep_n, axis=1)
            if tl.sum(n, axis=0) > 0:
                base = tl.atomic_add(count_ptr + rows, n, mask=(ts < T) & (n > 0))
                before = tl.dot(keep.to(tl.float16), upper).to(tl.int32) - keep_n
                slot = base[:, None] + before
                ok = keep & (slot < C) & (ts[:, None] < T)
                where = rows[:, None].to(tl.int64) * C + slot
                tl.store(cand_ptr + where, acc, mask=ok)
                tl.store(cand_idx_ptr + where, ss[None, :] + tl.zeros_like(slot), mask=ok)


def collect_prefix_dot_triton(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    tau: torch.Tensor,
    capacity: int,
    tiles_per_program: int = 1,
    num_warps: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`engram_sdk.model.indexer_triton.collect_triton` (same outputs: candidate
    scores, their key indices, counts), slots along a row by a tensor-core prefix count."""
    b, t, h, d = q.shape
    s = keys.shape[1]
    q, weights, keys, query_pos, key_pos = _prepare(q, weights, keys, query_pos, key_pos)
    tau = tau.float().contiguous()
    count = torch.zeros(b, t, device=q.device, dtype=torch.int32)
    cand = torch.full((b, t, capacity), float("-inf"), device=q.device)
    cand_idx = torch.zeros(b, t, capacity, device=q.device, dtype=torch.int32)
    _, block_t = _head_rows(h, False)
    tiles = triton.cdiv(s, BLOCK_S)
    grid = (b, triton.cdiv(t, block_t), triton.cdiv(tiles, tiles_per_program))
    _collect_prefix_dot_kernel[grid](
        q, weights, keys, query_pos, key_pos, tau, count, cand, cand_idx,
        t, s, h, d, capacity, *_strides(q, weights, keys, query_pos),
        BLOCK_T=block_t, BLOCK_S=BLOCK_S, BLOCK_D=_block_d(d), TILES=tiles_per_program,
        num_warps=num_warps,
    )  # fmt: skip
    return cand, cand_idx, count


COLLECT_VARIANTS = {  # (prefix by a dot, key tiles a program, warps): picked by timing on CUDA
    "prefix dot": (True, 1, 4),
    "prefix dot, 4 tiles a program": (True, 4, 4),
    "prefix dot, 8 warps": (True, 1, 8),
    "row sums (scan)": (False, 1, 4),
}


def collect(
    part: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    pos: torch.Tensor,
    key_pos: torch.Tensor,
    tau: torch.Tensor,
    capacity: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pass 2 (recompute, keep the scores ≥ ``tau``) by its fastest variant."""
    from engram_sdk.model.indexer_triton import collect_triton, fastest

    args = (*part, pos, key_pos, tau, capacity)

    def run(dot: bool, tiles: int, warps: int):
        if dot:
            return collect_prefix_dot_triton(*args, tiles_per_program=tiles, num_warps=warps)
        return collect_triton(*args, tiles_per_program=tiles)

    variants = {name: lambda v=v: run(*v) for name, v in COLLECT_VARIANTS.items()}
    if part[0].shape[2] <= 4:
        from engram_sdk.model.indexer_heads4 import collect_heads4_triton
        from engram_sdk.model.indexer_regions import collect_regions_triton

        for name, (dot, tiles, warps, skip) in COLLECT_HEADS4_VARIANTS.items():
            variants[f"4 heads held, {name}"] = lambda v=(dot, tiles, warps, skip): (
                collect_heads4_triton(*args, prefix_dot=v[0], tiles_per_program=v[1],
                                      num_warps=v[2], skip_full=v[3])
            )  # fmt: skip
        if REGIONS_IN_MODEL:  # off until checked on a GPU: the phase rows measure them
            for name, v in REGION_VARIANTS.items():
                variants[f"regions, {name}"] = lambda v=v: collect_regions_triton(
                    *part, pos, key_pos, tau, capacity, regions=v[0], skip_full=v[1],
                    prefix_dot=v[2],
                )  # fmt: skip
    return fastest(("collect, recompute", *part[0].shape[2:]), variants)


REGIONS_IN_MODEL = False  # key-range collect among the model's variants (see collect)
REGION_VARIANTS = {  # (key ranges, whole tiles unmasked, prefix dot): see indexer_regions
    "64 ranges": (64, False, False),
    "64 ranges, whole tiles unmasked": (64, True, False),
    "64 ranges, prefix dot": (64, False, True),
    "128 ranges": (128, False, False),
}
COLLECT_HEADS4_VARIANTS = {  # (prefix by a dot, key tiles a program, warps, unmasked)
    "prefix dot, 8 tiles": (True, 8, 4, False),
    "scan, 8 tiles": (False, 8, 4, False),
    "scan, 8 tiles, whole tiles unmasked": (False, 8, 4, True),
    "prefix dot, 32 tiles": (True, 32, 4, False),
}


def group_maxima(
    part: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    pos: torch.Tensor,
    key_pos: torch.Tensor,
    group: int,
) -> torch.Tensor:
    """Pass 1 (each query's maximum per group of keys) by its fastest variant: the generic
    kernel, or with at most four heads the one holding queries across key tiles."""
    from engram_sdk.model.indexer_heads4 import group_max_heads4_triton
    from engram_sdk.model.indexer_triton import fastest, group_max_triton

    args = (*part, pos, key_pos, group)
    variants = {
        "dot per head": lambda: group_max_triton(*args),
    }
    if part[0].shape[2] <= 4:
        for name, (bt, tiles, stages, warps, skip) in HEADS4_VARIANTS.items():
            variants[f"4 heads held, {name}"] = lambda v=(bt, tiles, stages, warps, skip): (
                group_max_heads4_triton(*args, block_t=v[0], tiles_per_program=v[1],
                                        stages=v[2], num_warps=v[3], skip_full=v[4])
            )  # fmt: skip
    return fastest(("group max, recompute", *part[0].shape[2:]), variants)


HEADS4_VARIANTS = {  # (queries, key tiles a program, stages, warps, whole tiles unmasked)
    "64 queries, 8 tiles": (64, 8, 2, 4, False),
    "64 queries, 8 tiles, whole tiles unmasked": (64, 8, 2, 4, True),
    "64 queries, 32 tiles, 3 stages": (64, 32, 3, 4, False),
    "128 queries, 16 tiles, 8 warps": (128, 16, 2, 8, False),
}
TAU_SLACK = 2.0**-16  # τ lowered by this share of |τ|: pass 2's rounding may differ a hair


def select_recomputed(
    part: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    pos: torch.Tensor,
    key_pos: torch.Tensor,
    group: int,
    topk: int,
    capacity: int,
) -> torch.Tensor:
    """One query chunk: group maxima, τ, scores recomputed and collected, top-k of the
    buffer → (B, Tq, topk) key indices (``EMPTY`` for none)."""
    from engram_sdk.model.sparse_threshold import kth_largest, pick

    maxima = group_maxima(part, pos, key_pos, group)
    tau = kth_largest(maxima, topk)
    tau = tau - tau.abs() * TAU_SLACK  # still ≤ the k-th score if pass 2 rounds a bit lower
    del maxima
    cand, cand_idx, count = collect(part, pos, key_pos, tau, capacity)
    picked = pick(cand, cand_idx, topk)
    overflowed = count > cand.shape[-1]  # the buffer's slots (a variant may have more)
    if bool(overflowed.any()):
        _resolve_overflowed(picked, overflowed, cand, cand_idx, part, pos, key_pos, topk, capacity)
    return picked


def _resolve_overflowed(
    picked: torch.Tensor,
    overflowed: torch.Tensor,
    cand: torch.Tensor,
    cand_idx: torch.Tensor,
    part: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    pos: torch.Tensor,
    key_pos: torch.Tensor,
    topk: int,
    capacity: int,
    attempts: int = 3,
) -> None:
    """Rows whose buffer overflowed, in place: τ' = the k-th largest caught (≤ the k-th
    score), keys strictly above τ' collected again, ties at τ' from the caught ones."""
    from engram_sdk.model.sparse_threshold import _redo_overflowed, kth_largest, pick

    q, weights, keys = part
    for row in overflowed.any(-1).nonzero()[:, 0].tolist():
        cols = overflowed[row].nonzero()[:, 0]
        sub = (q[row : row + 1, cols], weights[row : row + 1, cols], keys[row : row + 1])
        sub_pos = pos[row : row + 1, cols]
        buf, buf_idx = cand[row : row + 1, cols], cand_idx[row : row + 1, cols]
        left = torch.ones_like(sub_pos, dtype=torch.bool)
        for _ in range(attempts):
            tau = kth_largest(buf, topk)
            above = torch.nextafter(tau, torch.tensor(float("inf"), device=tau.device))
            got, got_idx, n = collect(sub, sub_pos, key_pos, above, capacity)
            ties = buf.masked_fill(buf != tau[..., None], float("-inf"))
            done = left & (n <= got.shape[-1])
            both = pick(torch.cat([got, ties], -1), torch.cat([got_idx, buf_idx], -1), topk)
            picked[row, cols[done[0]]] = both[done]
            left &= ~done
            if not bool(left.any()):
                break
            buf, buf_idx = got, got_idx  # all above τ': the next τ' is higher
        if bool(left.any()):
            still = torch.zeros_like(overflowed)
            still[row, cols[left[0]]] = True
            _redo_overflowed(picked, still, part, pos, key_pos, topk)
