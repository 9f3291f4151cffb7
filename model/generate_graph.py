"""Batched decoding steps replayed as one CUDA graph.

A decode step of a small model is a few hundred tiny kernels: launching them from Python
costs more than running them. ``GraphedStep`` records one step of the whole model once and
replays it for every following token, so a step costs one launch. What makes that possible:
the latent caches are made static (attention over the whole preallocated capacity, lengths
advanced in place, see :meth:`LatentCache.make_static`) and the step's token ids live in a
fixed device buffer.

Only where the step is pure device work: CUDA and no Engram layers (their hashing and table
lookups may run on the host). Sparse attention (DSA) is recorded too: a decode step's top-k
is one scoring tile over the whole static capacity (later positions masked) and a device
``topk``, with no host-side plan (the key bound is the capacity, not the host's length).
Any failure while recording leaves the cache as it was and decoding goes on eagerly.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from engram_sdk.model.transformer import ModelCache


def graphable(model: Any, cache: ModelCache) -> bool:
    """Whether ``model``'s decode steps on ``cache`` can be recorded as a CUDA graph."""
    cfg = model.config
    return (
        next(model.parameters()).is_cuda
        and not cfg.engram_layer_ids
        and all(lc.attn is not None for lc in cache.layers)
    )


class GraphedStep:
    """Decode steps of ``model`` on ``cache`` (fixed batch), the second one on recorded.

    Call :meth:`step` with one token id per row → last-position logits (B, vocab); the
    first call runs eagerly (and warms up), the second records, later calls replay.
    """

    def __init__(self, model: Any, cache: ModelCache) -> None:
        self.model, self.cache = model, cache
        self.tokens: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.steps = 0
        for lc in cache.layers:
            lc.attn.make_static()  # type: ignore[union-attr]

    def _forward(self) -> torch.Tensor:
        with _autocast_without_cache():
            return self.model(self.tokens, self.cache)[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits after feeding ``tokens`` (B, 1) device ids."""
        self.steps += 1
        if self.tokens is None:
            self.tokens = tokens.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the capture stream, as CUDA graphs ask
                logits = self._forward()
            torch.cuda.current_stream().wait_stream(side)
            return logits
        self.tokens.copy_(tokens)
        if self.graph is None:
            self.graph = self._record()
        self.graph.replay()
        assert self.logits is not None
        return self.logits

    def _record(self) -> torch.cuda.CUDAGraph:
        host = _host_state(self.cache)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.logits = self._forward()
        except Exception:
            _restore_host_state(self.cache, host)  # nothing of the step ran on the device
            raise
        return graph  # the host advanced one step while recording: the first replay's

    def finish(self) -> None:
        """Bring the host-side lengths up to date (replays after the first advance only the device's)."""
        if self.graph is not None and self.steps > 2:
            self.cache.length += self.steps - 2
            for lc in self.cache.layers:
                lc.attn.max_length += self.steps - 2  # type: ignore[union-attr]


def _autocast_without_cache() -> contextlib.AbstractContextManager:
    """The surrounding autocast, without its cast cache (cached casts outlive a recording)."""
    if not torch.is_autocast_enabled("cuda"):
        return contextlib.nullcontext()
    dtype = torch.get_autocast_dtype("cuda")
    return torch.autocast("cuda", dtype=dtype, cache_enabled=False)


def _host_state(cache: ModelCache) -> tuple[int, list[int]]:
    return cache.length, [lc.attn.max_length for lc in cache.layers]  # type: ignore[union-attr]


def _restore_host_state(cache: ModelCache, state: tuple[int, list[int]]) -> None:
    cache.length, lengths = state
    for lc, n in zip(cache.layers, lengths, strict=True):
        lc.attn.max_length = n  # type: ignore[union-attr]
