"""Triton kernels of the lightning indexer's scores (CUDA, or Triton's CPU interpreter).

score[t, s] = Σ_h w[t, h] · relu(q[t, h] · k[s]), -inf where key s is not visible to query t.
One program scores a (BLOCK_T queries × BLOCK_S keys) tile in registers: all heads are
folded into the tile before anything is written, so no per-head logits ever exist.

Three ways to use a tile:

- ``index_scores_triton``: write the tile (the plain fused path, a bounded tile of scores);
- ``group_max_triton``: write only the maximum of every ``group`` consecutive keys — 1/group
  of the scores. The k-th largest of those maxima is a lower bound on the k-th largest score
  (the maxima are a subset of the scores), so it is a safe threshold for the top-k;
- ``collect_triton``: score the tile again and append each query's keys scoring at least its
  threshold to a small candidate buffer (an atomic counter per query hands out the slots).

Together the last two select the top-k with two compute-bound passes over the keys and
O(T · (k + S/group)) memory — the (T × S) scores are never written. DeepSeek-V3.2-Exp's
``fp8_index`` writes the scores and sorts them with ``torch.topk``; this keeps its fused
relu-and-weighted-head-sum scoring but replaces the write-then-sort with threshold-and-collect.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch
import triton
import triton.language as tl

BLOCK_T = 64
BLOCK_S = 128


@triton.jit
def _score_tile(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr,
    b, ts, ss, T, S, H, D, window,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """(BLOCK_T, BLOCK_S) float32 scores of queries ``ts`` × keys ``ss``, -inf if not visible."""
    d = tl.arange(0, BLOCK_D)
    keys = tl.load(
        k_ptr + b * stride_kb + ss[:, None] * stride_ks + d[None, :],
        mask=(ss[:, None] < S) & (d[None, :] < D),
        other=0.0,
    )
    acc = tl.zeros((BLOCK_T, BLOCK_S), tl.float32)
    for h in range(H):
        q = tl.load(
            q_ptr + b * stride_qb + ts[:, None] * stride_qt + h * stride_qh + d[None, :],
            mask=(ts[:, None] < T) & (d[None, :] < D),
            other=0.0,
        )
        w = tl.load(w_ptr + b * stride_wb + ts * stride_wt + h, mask=ts < T, other=0.0)
        logits = tl.maximum(tl.dot(q, tl.trans(keys)), 0.0)
        acc += logits * w.to(tl.float32)[:, None]
    qpos = tl.load(qpos_ptr + b * stride_pb + ts, mask=ts < T, other=-1)
    kpos = tl.load(kpos_ptr + ss, mask=ss < S, other=2**62)
    seen = kpos[None, :] <= qpos[:, None]
    if window > 0:
        seen = seen & (kpos[None, :] > qpos[:, None] - window)
    return tl.where(seen, acc, float("-inf"))


@triton.jit
def _score_tile_stacked(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr,
    b, t0, ss, T, S, H, D, window,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, HP: tl.constexpr,
):  # fmt: skip
    """As ``_score_tile``, all heads in one dot: rows are (query, head) pairs, HP heads padded."""
    d = tl.arange(0, BLOCK_D)
    r = tl.arange(0, BLOCK_T * HP)
    tr, hr = t0 + r // HP, r % HP
    live = (tr < T) & (hr < H)
    keys = tl.load(
        k_ptr + b * stride_kb + ss[:, None] * stride_ks + d[None, :],
        mask=(ss[:, None] < S) & (d[None, :] < D),
        other=0.0,
    )
    q = tl.load(
        q_ptr + b * stride_qb + tr[:, None] * stride_qt + hr[:, None] * stride_qh + d[None, :],
        mask=live[:, None] & (d[None, :] < D),
        other=0.0,
    )
    w = tl.load(w_ptr + b * stride_wb + tr * stride_wt + hr, mask=live, other=0.0)
    logits = tl.maximum(tl.dot(q, tl.trans(keys)), 0.0) * w.to(tl.float32)[:, None]
    acc = tl.sum(tl.reshape(logits, (BLOCK_T, HP, BLOCK_S)), axis=1)
    ts = t0 + tl.arange(0, BLOCK_T)
    qpos = tl.load(qpos_ptr + b * stride_pb + ts, mask=ts < T, other=-1)
    kpos = tl.load(kpos_ptr + ss, mask=ss < S, other=2**62)
    seen = kpos[None, :] <= qpos[:, None]
    if window > 0:
        seen = seen & (kpos[None, :] > qpos[:, None] - window)
    return tl.where(seen, acc, float("-inf"))


@triton.jit
def _tile_is_hidden(qpos_ptr, kpos_ptr, b, ts, ss, T, S, stride_pb):
    """Whether no key of the tile is visible to any of its queries (causally)."""
    qpos = tl.load(qpos_ptr + b * stride_pb + ts, mask=ts < T, other=-1)
    kpos = tl.load(kpos_ptr + ss, mask=ss < S, other=2**62)
    return tl.min(kpos, axis=0) > tl.max(qpos, axis=0)


@triton.jit
def _scores(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr,
    b, t0, ss, T, S, H, D, window,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, HP: tl.constexpr,
):  # fmt: skip
    """The tile's scores: one dot per head (HP == 0) or all HP heads in one dot."""
    if HP > 0:
        acc = _score_tile_stacked(
            q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, b, t0, ss, T, S, H, D, window,
            stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks,
            stride_pb, BLOCK_T, BLOCK_S, BLOCK_D, HP,
        )  # fmt: skip
    else:
        acc = _score_tile(
            q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, b, t0 + tl.arange(0, BLOCK_T), ss, T, S,
            H, D, window, stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb,
            stride_ks, stride_pb, BLOCK_T, BLOCK_S, BLOCK_D,
        )  # fmt: skip
    return acc


@triton.jit
def _index_scores_kernel(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, out_ptr,
    T, S, H, D, window,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    stride_ob, stride_ot,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    ts = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    ss = tl.program_id(2) * BLOCK_S + tl.arange(0, BLOCK_S)
    acc = _score_tile(
        q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, b, ts, ss, T, S, H, D, window,
        stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
        BLOCK_T, BLOCK_S, BLOCK_D,
    )  # fmt: skip
    tl.store(
        out_ptr + b * stride_ob + ts[:, None] * stride_ot + ss[None, :],
        acc,
        mask=(ts[:, None] < T) & (ss[None, :] < S),
    )


@triton.jit
def _group_max_kernel(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, out_ptr,
    T, S, H, D, window, NG,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    stride_ob, stride_ot,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, GROUP: tl.constexpr,
    HP: tl.constexpr, TILES: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    t0 = tl.program_id(1) * BLOCK_T
    ts = t0 + tl.arange(0, BLOCK_T)
    for j in range(TILES):  # TILES key tiles per program
        tile = tl.program_id(2) * TILES + j
        ss = tile * BLOCK_S + tl.arange(0, BLOCK_S)
        gs = tile * (BLOCK_S // GROUP) + tl.arange(0, BLOCK_S // GROUP)
        where = out_ptr + b * stride_ob + ts[:, None] * stride_ot + gs[None, :]
        inside = (ts[:, None] < T) & (gs[None, :] < NG)
        if _tile_is_hidden(qpos_ptr, kpos_ptr, b, ts, ss, T, S, stride_pb):
            hidden = tl.full((BLOCK_T, BLOCK_S // GROUP), float("-inf"), tl.float32)
            tl.store(where, hidden, mask=inside)
        else:
            acc = _scores(
                q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, b, t0, ss, T, S, H, D, window,
                stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks,
                stride_pb, BLOCK_T, BLOCK_S, BLOCK_D, HP,
            )  # fmt: skip
            best = tl.max(tl.reshape(acc, (BLOCK_T, BLOCK_S // GROUP, GROUP)), axis=2)
            tl.store(where, best, mask=inside)


@triton.jit
def _collect_kernel(
    q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, tau_ptr, count_ptr, cand_ptr, cand_idx_ptr,
    T, S, H, D, window, C,
    stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks, stride_pb,
    BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, HP: tl.constexpr,
    PER_KEY: tl.constexpr, TILES: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    t0 = tl.program_id(1) * BLOCK_T
    ts = t0 + tl.arange(0, BLOCK_T)
    rows = b * T + ts
    tau = tl.load(tau_ptr + rows, mask=ts < T, other=float("inf"))
    for j in range(TILES):  # TILES key tiles per program
        ss = (tl.program_id(2) * TILES + j) * BLOCK_S + tl.arange(0, BLOCK_S)
        if not _tile_is_hidden(qpos_ptr, kpos_ptr, b, ts, ss, T, S, stride_pb):
            acc = _scores(
                q_ptr, w_ptr, k_ptr, qpos_ptr, kpos_ptr, b, t0, ss, T, S, H, D, window,
                stride_qb, stride_qt, stride_qh, stride_wb, stride_wt, stride_kb, stride_ks,
                stride_pb, BLOCK_T, BLOCK_S, BLOCK_D, HP,
            )  # fmt: skip
            keep = (acc >= tau[:, None]) & (acc > float("-inf"))
            keep_n = keep.to(tl.int32)
            if PER_KEY:  # one atomic per kept key (~2% of the tile) hands out its slot
                slot = tl.atomic_add(
                    count_ptr + rows[:, None] + tl.zeros_like(keep_n), keep_n, mask=keep
                )
            else:  # one atomic per row for its kept keys, slots by a running sum along it
                n = tl.sum(keep_n, axis=1)
                base = tl.atomic_add(count_ptr + rows, n, mask=(ts < T) & (n > 0))
                slot = base[:, None] + tl.cumsum(keep_n, axis=1) - keep_n
            ok = keep & (slot < C) & (ts[:, None] < T)
            where = rows[:, None].to(tl.int64) * C + slot
            tl.store(cand_ptr + where, acc, mask=ok)
            tl.store(cand_idx_ptr + where, ss[None, :] + tl.zeros_like(slot), mask=ok)


def _prepare(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    q = q if q.stride(-1) == 1 else q.contiguous()
    keys = keys.to(q.dtype)
    keys = keys if keys.stride(-1) == 1 else keys.contiguous()
    return (
        q,
        weights.float().contiguous(),
        keys,
        query_pos.to(torch.int64).contiguous(),
        key_pos.to(torch.int64).contiguous(),
    )


def _strides(q, weights, keys, query_pos) -> tuple[int, ...]:
    return (
        q.stride(0), q.stride(1), q.stride(2), weights.stride(0), weights.stride(1),
        keys.stride(0), keys.stride(1), query_pos.stride(0),
    )  # fmt: skip


def _head_rows(h: int, stacked: bool) -> tuple[int, int]:
    """(HP, queries per tile): HP heads padded to a power of two in one dot, 128 rows a
    tile; or HP = 0 (a dot per head) and ``BLOCK_T`` queries."""
    hp = triton.next_power_of_2(h)
    if not stacked or hp > 16:  # many heads: a dot per head keeps the tile in registers
        return 0, BLOCK_T
    return hp, 128 // hp


def _block_d(d: int) -> int:
    return max(16, triton.next_power_of_2(d))


def index_scores_triton(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    window: int = 0,
) -> torch.Tensor:
    """Σ_h w_h · relu(q_h · k), -inf where a key is not visible → (B, T, S) float32, fused.

    q (B, T, H, D), weights (B, T, H), keys (B, S, D), query_pos (B, T), key_pos (S,).
    """
    b, t, h, d = q.shape
    s = keys.shape[1]
    q, weights, keys, query_pos, key_pos = _prepare(q, weights, keys, query_pos, key_pos)
    out = torch.empty(b, t, s, device=q.device, dtype=torch.float32)
    grid = (b, triton.cdiv(t, BLOCK_T), triton.cdiv(s, BLOCK_S))
    _index_scores_kernel[grid](
        q, weights, keys, query_pos, key_pos, out, t, s, h, d, window,
        *_strides(q, weights, keys, query_pos), out.stride(0), out.stride(1),
        BLOCK_T=BLOCK_T, BLOCK_S=BLOCK_S, BLOCK_D=_block_d(d),
    )  # fmt: skip
    return out


def group_max_triton(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    group: int,
    window: int = 0,
    num_warps: int = 4,
    stacked: bool = False,
    tiles_per_program: int = 1,
) -> torch.Tensor:
    """Max score of every ``group`` consecutive keys → (B, T, ceil(S / 128) · 128 / group).

    ``group`` is a power of two ≤ 128; groups past the last key hold -inf. ``stacked``: one
    dot for all heads ((query, head) rows, 128 of them) instead of one dot per head.
    """
    if group < 1 or group > BLOCK_S or group & (group - 1):
        raise ValueError(f"group must be a power of two <= {BLOCK_S}, got {group}")
    b, t, h, d = q.shape
    s = keys.shape[1]
    q, weights, keys, query_pos, key_pos = _prepare(q, weights, keys, query_pos, key_pos)
    tiles = triton.cdiv(s, BLOCK_S)
    out = torch.empty(b, t, tiles * BLOCK_S // group, device=q.device, dtype=torch.float32)
    hp, block_t = _head_rows(h, stacked)
    grid = (b, triton.cdiv(t, block_t), triton.cdiv(tiles, tiles_per_program))
    _group_max_kernel[grid](
        q, weights, keys, query_pos, key_pos, out, t, s, h, d, window, out.shape[-1],
        *_strides(q, weights, keys, query_pos), out.stride(0), out.stride(1),
        BLOCK_T=block_t, BLOCK_S=BLOCK_S, BLOCK_D=_block_d(d), GROUP=group, HP=hp,
        TILES=tiles_per_program, num_warps=num_warps,
    )  # fmt: skip
    return out


def collect_triton(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    tau: torch.Tensor,
    capacity: int,
    window: int = 0,
    stacked: bool = False,
    per_key: bool = False,
    tiles_per_program: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each query's visible keys scoring ≥ its threshold ``tau`` (B, T), in no set order.

    ``per_key``: slots handed out by one atomic per kept key instead of one per row and a
    running sum along it.

    → scores (B, T, capacity) float32 (-inf in unused slots), key indices (B, T, capacity)
    int32, and the number of keys that qualified (B, T) int32 — more than ``capacity``
    means the buffer overflowed and that row's candidates are incomplete.
    """
    b, t, h, d = q.shape
    s = keys.shape[1]
    q, weights, keys, query_pos, key_pos = _prepare(q, weights, keys, query_pos, key_pos)
    tau = tau.float().contiguous()
    count = torch.zeros(b, t, device=q.device, dtype=torch.int32)
    cand = torch.full((b, t, capacity), float("-inf"), device=q.device)
    cand_idx = torch.zeros(b, t, capacity, device=q.device, dtype=torch.int32)
    hp, block_t = _head_rows(h, stacked)
    grid = (b, triton.cdiv(t, block_t), triton.cdiv(triton.cdiv(s, BLOCK_S), tiles_per_program))
    _collect_kernel[grid](
        q, weights, keys, query_pos, key_pos, tau, count, cand, cand_idx,
        t, s, h, d, window, capacity, *_strides(q, weights, keys, query_pos),
        BLOCK_T=block_t, BLOCK_S=BLOCK_S, BLOCK_D=_block_d(d), HP=hp, PER_KEY=per_key,
        TILES=tiles_per_program,
    )  # fmt: skip
    return cand, cand_idx, count


_CHOSEN: dict[tuple, str] = {}


def fastest(key: tuple, variants: dict[str, Callable[[], Any]]) -> Any:
    """Run the fastest of equivalent ``variants`` and return its result.

    On CUDA the first call per ``key`` runs every variant twice (compile, then one timed
    run) and remembers the fastest; later calls run only that one. Elsewhere the first.
    """
    if key in _CHOSEN:
        return variants[_CHOSEN[key]]()
    if not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        return next(iter(variants.values()))()
    took, errors = {}, []
    for name, run in variants.items():
        try:
            run()
            torch.cuda.synchronize()
        except Exception as exc:  # a variant that does not build here is left out
            errors.append(exc)
            continue
        t0 = time.perf_counter()
        run()
        torch.cuda.synchronize()
        took[name] = time.perf_counter() - t0
    if not took:
        raise errors[0]
    _CHOSEN[key] = min(took, key=took.__getitem__)
    return variants[_CHOSEN[key]]()


def chosen_variants() -> dict[tuple, str]:
    """The variant :func:`fastest` picked for each key so far."""
    return dict(_CHOSEN)


def forget_variants() -> None:
    """Forget every pick: the next call per key times its variants again (after a run at
    shapes unlike the real ones, e.g. a correctness check)."""
    _CHOSEN.clear()
