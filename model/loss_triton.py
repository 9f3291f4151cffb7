"""Triton kernel of the fused loss (``model/loss.py``): cross-entropy and its gradient per row.

One program per row of a chunk's logits (N, V): a first pass keeps a running maximum and sum
of exponentials (the log-sum-exp), a second writes the gradient ``softmax - one_hot`` over
the logits in place. Two reads and one write of the logits, against the half-dozen
float32 passes the same thing costs in eager torch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

IGNORE = -100


@triton.jit
def _ce_rows_kernel(
    logits_ptr, targets_ptr, loss_ptr, V, stride_row, ignore,
    BLOCK_V: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + row * stride_row
    cols = tl.arange(0, BLOCK_V)
    m = tl.full((), -1e30, tl.float32)
    total = tl.zeros((), tl.float32)
    for v0 in range(0, V, BLOCK_V):
        x = tl.load(base + v0 + cols, mask=v0 + cols < V, other=-float("inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        total = total * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    lse = m + tl.log(total)
    target = tl.load(targets_ptr + row)
    valid = target != ignore
    picked = tl.load(base + tl.where(valid, target, 0)).to(tl.float32)
    tl.store(loss_ptr + row, tl.where(valid, lse - picked, 0.0))
    for v0 in range(0, V, BLOCK_V):
        x = tl.load(base + v0 + cols, mask=v0 + cols < V, other=0.0).to(tl.float32)
        grad = tl.exp(x - lse) - tl.where(v0 + cols == target, 1.0, 0.0)
        grad = tl.where(valid, grad, 0.0)
        tl.store(base + v0 + cols, grad.to(logits_ptr.dtype.element_ty), mask=v0 + cols < V)


def ce_rows_triton(
    logits: torch.Tensor, targets: torch.Tensor, vocab: int | None = None
) -> torch.Tensor:
    """Per-row cross-entropy (N,) float32 of logits (N, V); the logits become its gradient
    (softmax - one-hot; zero rows where the target is ``IGNORE``), in place. ``vocab``: only
    the first ``vocab`` columns are logits (a head padded for the matmul); the rest is
    left as it is."""
    if logits.stride(-1) != 1:
        raise ValueError("logits must have a dense last dimension")
    n, v = logits.shape[0], vocab or logits.shape[1]
    loss = torch.empty(n, device=logits.device, dtype=torch.float32)
    _ce_rows_kernel[(n,)](
        logits, targets.contiguous(), loss, v, logits.stride(0), IGNORE,
        BLOCK_V=4096, num_warps=8,
    )  # fmt: skip
    return loss
