"""Decoding with the latent cache: greedy, temperature, top-p, stop sequences, streaming."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from engram_sdk.model.transformer import ModelCache

from engram_sdk.errors import InputError


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """One token id from the last position's logits (vocab,)."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < top_p
        probs = torch.zeros_like(probs).scatter_(0, idx[keep], sorted_p[keep])
        probs = probs / probs.sum()
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


@torch.no_grad()
def stream(
    model: Any,
    prompt_ids: Sequence[int] | torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: Sequence[Sequence[int]] | None = None,
    seed: int | None = None,
) -> Iterator[int]:
    """Yield new ids until ``max_new_tokens`` or a stop sequence (which is yielded too)."""
    ids = torch.as_tensor(prompt_ids, dtype=torch.long).flatten()
    if ids.numel() == 0:
        raise InputError("prompt_ids must not be empty")
    if not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {top_p}")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    cache = ModelCache()
    was_training = model.training
    model.eval()
    try:
        logits = model(ids[None].to(device), cache)[0, -1]
        produced: list[int] = []
        stops = [list(s) for s in (stop or []) if len(s)]
        for _ in range(max_new_tokens):
            nxt = sample_next(logits, temperature, top_p, generator)
            produced.append(nxt)
            yield nxt
            if any(produced[-len(s) :] == s for s in stops):
                return
            if cache.length >= model.config.max_seq_len:
                return
            logits = model(torch.tensor([[nxt]], device=device), cache)[0, -1]
    finally:
        model.train(was_training)


def generate(
    model: Any,
    prompt_ids: Sequence[int] | torch.Tensor,
    max_new_tokens: int,
    stop: Sequence[Sequence[int]] | None = None,
    **kwargs: Any,
) -> list[int]:
    """New ids after the prompt; a stop sequence that ended generation is not included."""
    out = list(stream(model, prompt_ids, max_new_tokens, stop=stop, **kwargs))
    for s in stop or []:
        if s and out[-len(s) :] == list(s):
            return out[: -len(s)]
    return out
