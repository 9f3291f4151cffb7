"""DeepSeek-V4's decoding cache: what each layer keeps so that a chunk of new tokens
computes exactly what the whole sequence would.

Per layer: the last ``window_size - 1`` window entries (sliding window); for a compressed
layer, its compressor's state (the tokens of the unfinished window, for CSA's overlapping
windows the last complete window's first series, and every entry so far); for a CSA layer
also the indexer's compressor state and keys. Per model: tokens seen and the Engram
look-back (the last ``max_ngram - 1`` canonical ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class CompressorState:
    """A compressor's progress: raw projections of the unfinished window (B, < ratio, width),
    the previous window's first series (kv, gate + ape) (B, 1, ratio, head_dim) when windows
    overlap, the number of entries emitted and the entries themselves (B, W, head_dim)."""

    pending_kv: torch.Tensor | None = None
    pending_gate: torch.Tensor | None = None
    prev_kv: torch.Tensor | None = None
    prev_gate: torch.Tensor | None = None
    entries: torch.Tensor | None = None

    @property
    def count(self) -> int:
        return 0 if self.entries is None else self.entries.shape[1]

    def append(self, new: torch.Tensor) -> torch.Tensor:
        """Add new entries (B, w, d); return all of them."""
        self.entries = new if self.entries is None else torch.cat([self.entries, new], dim=1)
        return self.entries


@dataclass
class V4LayerCache:
    """One attention layer's state (see the module docstring)."""

    window_kv: torch.Tensor | None = None
    window_positions: torch.Tensor | None = None
    compressor: CompressorState = field(default_factory=CompressorState)
    indexer: CompressorState = field(default_factory=CompressorState)


@dataclass
class V4Cache:
    """Decoding state of a whole V4 model."""

    length: int = 0
    layers: dict[int, V4LayerCache] = field(default_factory=dict)
    engram_history: torch.Tensor | None = None

    def layer(self, layer_id: int) -> V4LayerCache:
        return self.layers.setdefault(layer_id, V4LayerCache())
