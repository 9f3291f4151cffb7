"""The language-model loss with the output head fused in, a chunk of tokens at a time.

``F.cross_entropy(model(ids).float(), ...)`` writes the (tokens × vocab) logits, a float32
copy of them, their log-softmax and, in backward, as many again: with a 100K vocabulary
that traffic is a large share of a small model's step. Here the head and the
cross-entropy run together over ``chunk`` tokens at a time, and the gradients of that chunk
are made at once (softmax minus one-hot, times the head) while its logits are at hand, so
no (tokens × vocab) tensor ever exists; backward only scales the stored gradients.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from engram_sdk.errors import InputError

IGNORE = -100  # targets with this id count for nothing (as F.cross_entropy's ignore_index)


def lm_loss(
    model: Any, input_ids: torch.Tensor, targets: torch.Tensor, *, chunk: int = 4096
) -> torch.Tensor:
    """Mean next-token cross-entropy of ``model`` on ids (B, T) against targets (B, T)."""
    hidden = model(input_ids, return_hidden=True)
    return linear_cross_entropy(
        hidden.flatten(0, 1), model.head.weight, targets.to(hidden.device).flatten(), chunk=chunk
    )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk: int = 4096,
    kernel: bool | None = None,
) -> torch.Tensor:
    """cross_entropy(hidden @ weight.T, targets), mean over targets that are not ``IGNORE``.

    hidden (N, D), weight (V, D), targets (N,). Under CUDA autocast the matmuls run in its
    dtype; the softmax and the sums are float32 (float64 stays float64). ``kernel``: the
    softmax and its gradient by the Triton kernel of ``model/loss_triton.py`` (default: on
    CUDA with Triton, for 16-bit logits).
    """
    if chunk < 1:
        raise InputError(f"chunk must be >= 1, got {chunk}")
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise InputError(
            f"hidden must be (N, D) and targets (N,), got {tuple(hidden.shape)} and "
            f"{tuple(targets.shape)}"
        )
    dtype = hidden.dtype
    if hidden.is_cuda and torch.is_autocast_enabled("cuda"):
        dtype = torch.get_autocast_dtype("cuda")
    if kernel is None:
        from engram_sdk.model.sparse import triton_available

        kernel = hidden.is_cuda and dtype in (torch.bfloat16, torch.float16) and triton_available()
    return _LinearCrossEntropy.apply(hidden, weight, targets, chunk, dtype, kernel)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk: int,
        dtype: torch.dtype,
        kernel: bool,
    ) -> torch.Tensor:
        acc = torch.promote_types(dtype, torch.float32)
        off = torch.autocast(hidden.device.type, enabled=False) if hidden.is_cuda else None
        with off or contextlib.nullcontext():
            w = weight.to(dtype)
            vocab = w.shape[0]
            # an odd vocabulary (100277) leaves cuBLAS only slow kernels: pad it to 128 rows
            w_padded = F.pad(w, (0, 0, 0, -vocab % 128)) if kernel else w
            counted = (targets != IGNORE).sum()
            total = torch.zeros((), dtype=acc, device=hidden.device)
            grad_h = torch.empty(hidden.shape, dtype=dtype, device=hidden.device)
            grad_w = torch.zeros(weight.shape, dtype=acc, device=hidden.device)
            for i in range(0, hidden.shape[0], chunk):
                h = hidden[i : i + chunk].to(dtype)
                tgt = targets[i : i + chunk]
                if kernel:  # loss per row, and the logits turned into their gradient
                    from engram_sdk.model.loss_triton import ce_rows_triton

                    d_logits = h @ w_padded.t()  # padded columns: zero weights, zero logits
                    total += ce_rows_triton(d_logits, tgt, vocab).sum().to(acc)
                    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
                        grad_h[i : i + chunk] = d_logits @ w_padded
                        grad_w += (d_logits.t() @ h)[:vocab].to(acc)
                    continue
                valid = tgt != IGNORE
                rows = torch.arange(len(tgt), device=tgt.device)
                logits = (h @ w.t()).to(acc)
                lse = logits.logsumexp(-1)
                picked = logits[rows, tgt.clamp(min=0)]
                total += ((lse - picked) * valid).sum()
                if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
                    continue
                probs = logits.sub_(lse[:, None]).exp_()  # the softmax, in place of the logits
                probs[rows, tgt.clamp(min=0)] -= 1.0
                probs *= valid[:, None]
                d_logits = probs.to(dtype)
                grad_h[i : i + chunk] = d_logits @ w
                grad_w += (d_logits.t() @ h).to(acc)
            scale = 1.0 / counted.clamp(min=1).to(acc)
        ctx.save_for_backward(grad_h, grad_w, scale)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total * scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grad_h, grad_w, scale = ctx.saved_tensors
        g = grad * scale
        h_dtype, w_dtype = ctx.dtypes
        grads = (grad_h * g.to(grad_h.dtype)).to(h_dtype), (grad_w * g).to(w_dtype)
        return (*grads, None, None, None, None)
