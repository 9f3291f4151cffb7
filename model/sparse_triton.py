"""Triton kernel for :func:`engram_sdk.model.sparse.sparse_attention` (CUDA, forward only).

(The indexer's kernels are in :mod:`engram_sdk.model.indexer_triton`.)

One program per query (batch row × position) holds all heads: it walks the query's k
selected key indices in blocks, gathers those rows of the shared keys and values, and keeps
an online softmax (running max and sum) so nothing of size k × heads × dim is written out.
The torch path in ``sparse.py`` is the reference; ``benchmarks/long_context_gpu.py --check``
compares the two on the GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _sparse_attention_kernel(
    q_ptr, k_ptr, v_ptr, idx_ptr, out_ptr,
    T, S, H, K, DK, DV, scale,
    stride_qb, stride_qt, stride_qh,
    stride_kb, stride_ks,
    stride_vb, stride_vs,
    stride_ib, stride_it,
    stride_ob, stride_ot, stride_oh,
    BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DK: tl.constexpr, BLOCK_DV: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    b = pid // T
    t = pid % T
    heads = tl.arange(0, BLOCK_H)
    dk = tl.arange(0, BLOCK_DK)
    dv = tl.arange(0, BLOCK_DV)
    q = tl.load(
        q_ptr + b * stride_qb + t * stride_qt + heads[:, None] * stride_qh + dk[None, :],
        mask=(heads[:, None] < H) & (dk[None, :] < DK),
        other=0.0,
    )
    m = tl.full((BLOCK_H,), float("-inf"), tl.float32)
    denom = tl.zeros((BLOCK_H,), tl.float32)
    acc = tl.zeros((BLOCK_H, BLOCK_DV), tl.float32)
    for n0 in range(0, K, BLOCK_N):
        slots = n0 + tl.arange(0, BLOCK_N)
        idx = tl.load(idx_ptr + b * stride_ib + t * stride_it + slots, mask=slots < K, other=-1)
        valid = idx >= 0
        rows = tl.where(valid, idx, 0)
        keys = tl.load(
            k_ptr + b * stride_kb + rows[:, None] * stride_ks + dk[None, :],
            mask=valid[:, None] & (dk[None, :] < DK),
            other=0.0,
        )
        scores = tl.dot(q, tl.trans(keys)) * scale
        scores = tl.where(valid[None, :], scores, float("-inf"))
        m_new = tl.maximum(m, tl.max(scores, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(scores - m_safe[:, None])
        correction = tl.exp(m - m_safe)
        denom = denom * correction + tl.sum(p, axis=1)
        values = tl.load(
            v_ptr + b * stride_vb + rows[:, None] * stride_vs + dv[None, :],
            mask=valid[:, None] & (dv[None, :] < DV),
            other=0.0,
        )
        acc = acc * correction[:, None] + tl.dot(p.to(values.dtype), values)
        m = m_new
    out = acc / tl.where(denom > 0, denom, 1.0)[:, None]
    tl.store(
        out_ptr + b * stride_ob + t * stride_ot + heads[:, None] * stride_oh + dv[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=(heads[:, None] < H) & (dv[None, :] < DV),
    )


@triton.jit
def _sparse_latent_attention_kernel(
    q_ptr, k_ptr, idx_ptr, out_ptr,
    T, S, H, K, DK, DV, scale,
    stride_qb, stride_qt, stride_qh,
    stride_kb, stride_ks,
    stride_ib, stride_it,
    stride_ob, stride_ot, stride_oh,
    BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_DR: tl.constexpr,
):  # fmt: skip
    """The values are the keys' first DV columns (MLA's latent): each key row is read once."""
    pid = tl.program_id(0)
    b = pid // T
    t = pid % T
    heads = tl.arange(0, BLOCK_H)
    dl = tl.arange(0, BLOCK_DV)
    dr = tl.arange(0, BLOCK_DR)
    q_at = q_ptr + b * stride_qb + t * stride_qt + heads[:, None] * stride_qh
    q_lat = tl.load(q_at + dl[None, :], mask=(heads[:, None] < H) & (dl[None, :] < DV), other=0.0)
    q_rope = tl.load(
        q_at + DV + dr[None, :], mask=(heads[:, None] < H) & (dr[None, :] < DK - DV), other=0.0
    )
    m = tl.full((BLOCK_H,), float("-inf"), tl.float32)
    denom = tl.zeros((BLOCK_H,), tl.float32)
    acc = tl.zeros((BLOCK_H, BLOCK_DV), tl.float32)
    for n0 in range(0, K, BLOCK_N):
        slots = n0 + tl.arange(0, BLOCK_N)
        idx = tl.load(idx_ptr + b * stride_ib + t * stride_it + slots, mask=slots < K, other=-1)
        valid = idx >= 0
        row_at = k_ptr + b * stride_kb + tl.where(valid, idx, 0)[:, None] * stride_ks
        lat = tl.load(row_at + dl[None, :], mask=valid[:, None] & (dl[None, :] < DV), other=0.0)
        rope = tl.load(
            row_at + DV + dr[None, :], mask=valid[:, None] & (dr[None, :] < DK - DV), other=0.0
        )
        scores = (tl.dot(q_lat, tl.trans(lat)) + tl.dot(q_rope, tl.trans(rope))) * scale
        scores = tl.where(valid[None, :], scores, float("-inf"))
        m_new = tl.maximum(m, tl.max(scores, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(scores - m_safe[:, None])
        correction = tl.exp(m - m_safe)
        denom = denom * correction + tl.sum(p, axis=1)
        acc = acc * correction[:, None] + tl.dot(p.to(lat.dtype), lat)
        m = m_new
    out = acc / tl.where(denom > 0, denom, 1.0)[:, None]
    tl.store(
        out_ptr + b * stride_ob + t * stride_ot + heads[:, None] * stride_oh + dl[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=(heads[:, None] < H) & (dl[None, :] < DV),
    )


def _is_prefix_view(values: torch.Tensor, keys: torch.Tensor) -> bool:
    """Whether ``values`` is ``keys[..., :dv]`` (the same rows, the first dv columns)."""
    return (
        values.dtype == keys.dtype
        and values.data_ptr() == keys.data_ptr()
        and values.stride() == keys.stride()
        and values.shape[:-1] == keys.shape[:-1]
        and values.shape[-1] < keys.shape[-1]
        and keys.stride(-1) == 1
    )


def _latent_attention(
    q: torch.Tensor, keys: torch.Tensor, idx: torch.Tensor, scale: float, dv: int
) -> torch.Tensor:
    b, t, h, dk = q.shape
    out = torch.empty(b, t, h, dv, device=q.device, dtype=q.dtype)
    block_dv = triton.next_power_of_2(dv)
    _sparse_latent_attention_kernel[(b * t,)](
        q, keys, idx, out,
        t, keys.shape[1], h, idx.shape[-1], dk, dv, scale,
        q.stride(0), q.stride(1), q.stride(2),
        keys.stride(0), keys.stride(1),
        idx.stride(0), idx.stride(1),
        out.stride(0), out.stride(1), out.stride(2),
        BLOCK_H=max(16, triton.next_power_of_2(h)), BLOCK_N=32 if block_dv > 256 else 64,
        BLOCK_DV=block_dv, BLOCK_DR=max(16, triton.next_power_of_2(dk - dv)),
        num_warps=4 if block_dv <= 256 else 8,
    )  # fmt: skip
    return out


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself when its last dimension is dense (the kernel takes the other strides)."""
    return x if x.stride(-1) == 1 else x.contiguous()


def sparse_attention_triton(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, idx: torch.Tensor, scale: float
) -> torch.Tensor:
    """Same contract as the torch path of ``sparse_attention`` (no autograd)."""
    b, t, h, dk = q.shape
    s, dv, k = keys.shape[1], values.shape[-1], idx.shape[-1]
    q = _rows(q.to(keys.dtype))
    if _is_prefix_view(values, keys):  # MLA's latent: read each gathered row once
        return _latent_attention(q, keys, idx.to(torch.int32).contiguous(), scale, dv)
    keys, values = _rows(keys), _rows(values.to(keys.dtype))  # views of the cache: no copy
    idx = idx.to(torch.int32).contiguous()
    out = torch.empty(b, t, h, dv, device=q.device, dtype=q.dtype)  # q: keys' dtype now
    block_dk, block_dv = triton.next_power_of_2(dk), triton.next_power_of_2(dv)
    block_n = 32 if max(block_dk, block_dv) > 256 else 64
    _sparse_attention_kernel[(b * t,)](
        q, keys, values, idx, out,
        t, s, h, k, dk, dv, scale,
        q.stride(0), q.stride(1), q.stride(2),
        keys.stride(0), keys.stride(1),
        values.stride(0), values.stride(1),
        idx.stride(0), idx.stride(1),
        out.stride(0), out.stride(1), out.stride(2),
        BLOCK_H=max(16, triton.next_power_of_2(h)), BLOCK_N=block_n,
        BLOCK_DK=block_dk, BLOCK_DV=block_dv,
        num_warps=4 if block_dk <= 256 else 8,
    )  # fmt: skip
    return out
