"""Batching decoding state: stack single-sequence caches, keep only the rows still running.

Each prompt is prefilled on its own (no padding enters any sequence: not its attention, not
its Engram N-grams, not its Engram convolution); their caches are then stacked into one
batched cache where every row keeps its own length, and decoding runs on all rows at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from engram_sdk.model.block import LayerCache
from engram_sdk.model.latent_cache import LatentCache
from engram_sdk.model.transformer import ModelCache


def _left_pad(ids: torch.Tensor | None, width: int, pad_id: int) -> torch.Tensor | None:
    """The last Engram ids of one row, left-padded as the hasher pads a missing prefix."""
    if ids is None:
        return None
    return F.pad(ids[:, -width:], (width - min(width, ids.shape[1]), 0), value=pad_id)


def stack_caches(
    caches: Sequence[ModelCache], *, capacity: int, engram_context: int, pad_id: int
) -> ModelCache:
    """One cache whose rows continue the rows of ``caches``, in order.

    Each cache holds rows of one length (e.g. prompts of equal length prefilled together).

    ``capacity``: positions to preallocate per row (prompt + new tokens); ``engram_context``
    and ``pad_id``: the hasher's look-back width and pad id (short prompts are padded the
    way the hasher pads the start of a sequence, so N-grams across the join are unchanged).
    """
    lengths = [c.length for c in caches for _ in range(len(c.layers[0].attn.lengths))]  # type: ignore[union-attr]
    layers = []
    for per_seq in zip(*(c.layers for c in caches), strict=True):
        attn = LatentCache.stack([lc.attn for lc in per_seq], lengths, capacity)  # type: ignore[misc]
        convs = [lc.conv for lc in per_seq]
        conv = None if convs[0] is None else torch.cat(convs, dim=0)  # type: ignore[arg-type]
        layers.append(LayerCache(attn=attn, conv=conv))

    def joined(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
        if any(p is None for p in parts):
            return None
        return torch.cat([_left_pad(p, engram_context, pad_id) for p in parts], dim=0)  # type: ignore[misc]

    return ModelCache(
        layers=layers,
        last_ids=joined([c.last_ids for c in caches]),
        last_host_ids=joined([c.last_host_ids for c in caches]),
        length=max(lengths),
    )


def select_rows(cache: ModelCache, rows: list[int], lengths: list[int]) -> ModelCache:
    """The cache of only ``rows``; ``lengths`` are those rows' lengths (host ints)."""
    device_rows = {}

    def pick(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        if x.device not in device_rows:
            device_rows[x.device] = torch.tensor(rows, device=x.device)
        return x[device_rows[x.device]]

    layers = []
    for lc in cache.layers:
        attn = None
        if lc.attn is not None:
            attn = lc.attn.select(lc.attn.lengths.new_tensor(rows))
            attn.max_length = max(lengths)
        layers.append(LayerCache(attn=attn, conv=pick(lc.conv)))
    return ModelCache(
        layers=layers,
        last_ids=pick(cache.last_ids),
        last_host_ids=pick(cache.last_host_ids),
        length=max(lengths),
    )
