"""Training DSA's indexer with DeepSeek-V3.2-Exp's recipe.

The indexer learns to predict where the main attention looks: its softmax over keys is
pulled (KL divergence) towards the main attention's probabilities summed over heads and
L1-normalised. Two stages:

1. **dense warm-up** — attention stays dense, every parameter but the indexer's is frozen,
   and the KL runs over all causal keys;
2. **sparse** — attention runs over the indexer's top-k, everything trains: the language
   model from its own loss, the indexer from a KL restricted to the selected keys. The
   indexer's inputs are detached, so the two losses never mix.

``set_indexer_stage(model, "dense_warmup")`` then train on ``indexer_loss(model)`` (plus the
LM loss in the sparse stage); ``set_indexer_stage(model, "off")`` for inference.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from engram_sdk.model.attention import MLA
from engram_sdk.model.indexer import Indexer
from engram_sdk.model.sparse import EMPTY, index_scores, indexer_topk, visible
from torch import nn

from engram_sdk.errors import InputError

Stage = Literal["off", "dense_warmup", "sparse"]


def attention_layers(model: nn.Module) -> list[MLA]:
    """Every MLA layer of ``model`` that has an indexer."""
    return [m for m in model.modules() if isinstance(m, MLA) and m.indexer is not None]


def set_indexer_stage(model: nn.Module, stage: Stage) -> None:
    """Put every indexer in ``stage``; "dense_warmup" also freezes all but the indexers."""
    if stage not in ("off", "dense_warmup", "sparse"):
        raise InputError(f"stage must be 'off', 'dense_warmup' or 'sparse', got {stage!r}")
    layers = attention_layers(model)
    if not layers:
        raise InputError("the model has no DSA indexer (dsa_topk is 0)")
    indexer_params = {id(p) for m in layers for p in m.indexer.parameters()}  # type: ignore[union-attr]
    for p in model.parameters():
        p.requires_grad_(stage != "dense_warmup" or id(p) in indexer_params)
    for m in layers:
        m.indexer_stage = stage
        m.indexer_loss = torch.zeros(())


def indexer_loss(model: nn.Module) -> torch.Tensor:
    """Sum over layers of the KL losses left by the last training forward."""
    return sum((m.indexer_loss for m in attention_layers(model)), torch.zeros(()))


def indexer_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The indexers' parameters (what the dense warm-up trains)."""
    return [p for m in attention_layers(model) for p in m.indexer.parameters()]  # type: ignore[union-attr]


def indexer_kl(
    indexer: Indexer,
    x: torch.Tensor,
    q_latent: torch.Tensor | None,
    rot: torch.Tensor,
    attn_q: torch.Tensor,
    attn_keys: torch.Tensor,
    scale: float,
    pos: torch.Tensor,
    idx: torch.Tensor | None,
) -> torch.Tensor:
    """KL(head-summed attention ‖ indexer softmax), mean over queries.

    ``attn_q`` (B, T, H, C) and ``attn_keys`` (B, S, C) are the main attention's absorbed
    queries and latent keys (no gradient); ``idx`` None: over all causal keys (warm-up),
    else over the selected keys (sparse stage). Gradients reach the indexer only.
    """
    iq, w = indexer.queries(x, q_latent, rot)
    ik = indexer.keys(x, rot)
    if idx is None:
        allowed = visible(pos, torch.arange(attn_keys.shape[1], device=x.device))  # (B, T, S)
        with torch.no_grad():
            logits = torch.einsum("bthc,bsc->bths", attn_q.float(), attn_keys.float()) * scale
        predicted = index_scores(iq, w, ik)
    else:
        allowed = idx != EMPTY  # (B, T, k)
        b, t, k = idx.shape
        flat = idx.clamp(min=0).reshape(b, t * k, 1)
        with torch.no_grad():
            sel = attn_keys.gather(1, flat.expand(-1, -1, attn_keys.shape[-1])).view(b, t, k, -1)
            logits = torch.einsum("bthc,btkc->bthk", attn_q.float(), sel.float()) * scale
        sel_ik = ik.gather(1, flat.expand(-1, -1, ik.shape[-1])).view(b, t, k, -1)
        per_head = torch.einsum("bthd,btkd->bthk", iq.float(), sel_ik.float()).relu()
        predicted = torch.einsum("bthk,bth->btk", per_head, w.float())
    return _kl(logits, predicted, allowed)


def _kl(attn_logits: torch.Tensor, predicted: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        probs = attn_logits.masked_fill(~allowed[:, :, None], float("-inf")).softmax(-1)
        target = probs.nan_to_num(0.0).sum(2)
        target = target / target.sum(-1, keepdim=True).clamp_min(1e-20)
    log_q = predicted.masked_fill(~allowed, float("-inf")).log_softmax(-1)
    terms = torch.where(target > 0, target * (target.clamp_min(1e-20).log() - log_q), 0.0)
    return terms.sum(-1).mean()


@torch.no_grad()
def topk_overlap(model: nn.Module, ids: torch.Tensor, k: int) -> float:
    """Mean fraction of the dense attention's top-k keys (heads summed) the indexer also picks.

    Runs ``model`` on ``ids`` (B, T) without a cache; averaged over layers and queries that
    see more than ``k`` keys.
    """
    inputs: list[tuple[MLA, torch.Tensor, torch.Tensor]] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: inputs.append((mod, args[0], args[1])))
        for m in attention_layers(model)
    ]
    try:
        model(ids)
    finally:
        for h in hooks:
            h.remove()
    fractions = []
    for mla, x, freqs in inputs:
        b, t, _ = x.shape
        pos = torch.arange(t, device=x.device).expand(b, t)
        rot = freqs[pos]
        q_latent, q_nope, q_rope, keys = mla.project(x, rot)
        attn_q = mla.absorbed_queries(q_nope, q_rope)
        scores = torch.einsum("bthc,bsc->bths", attn_q, keys)
        allowed = visible(pos, torch.arange(t, device=x.device))
        probs = (scores * mla.scale).masked_fill(~allowed[:, :, None], float("-inf")).softmax(-1)
        want = probs.sum(2).topk(k, dim=-1).indices
        iq, w = mla.indexer.queries(x, q_latent, rot)  # type: ignore[union-attr]
        got = indexer_topk(iq, w, mla.indexer.keys(x, rot), pos, k)  # type: ignore[union-attr]
        hits = (got[..., :, None] == want[..., None, :]).any(-1).float().mean(-1)  # (B, T)
        fractions.append(hits[:, k:].mean())
    return float(torch.stack(fractions).mean())


def warm_up_indexers(
    model: nn.Module, batches: Iterable[torch.Tensor], *, lr: float = 1e-3
) -> list[float]:
    """Dense warm-up: train only the indexers on ``batches`` of ids; returns each step's KL."""
    set_indexer_stage(model, "dense_warmup")
    was_training = model.training
    model.train()
    opt = torch.optim.AdamW(indexer_parameters(model), lr=lr, weight_decay=0.0)
    losses = []
    try:
        for ids in batches:
            model(ids)
            loss = indexer_loss(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        set_indexer_stage(model, "off")
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
    return losses
