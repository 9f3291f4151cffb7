"""The per-layer decoding cache of MLA: compressed latents, rotary keys, indexer keys.

Buffers are preallocated and grown geometrically (doubling), so appending one token costs a
copy of that token only. Every row has its own length, so sequences of different lengths
decode in one batch: row ``b``'s next tokens go to positions ``lengths[b]...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LatentCache:
    """Per-layer decoding state; ``max_length`` is known on the host (no device sync).

    ``latent`` holds each position's compressed latent and rotated rotary key side by side
    (B, capacity, kv_lora_rank + rope): the keys of absorbed attention as they are, with
    the values (the latent) a view of them — decoding never concatenates the cache.
    """

    latent: torch.Tensor  # (B, capacity, kv_lora_rank + qk_rope_head_dim)
    rank: int  # kv_lora_rank
    index_keys: torch.Tensor | None  # (B, capacity, index_head_dim)
    lengths: torch.Tensor  # (B,) long, tokens held by each row
    max_length: int = 0
    uniform: bool = True  # every row holds max_length tokens (known on the host)
    static: bool = False  # fixed shapes for a CUDA graph: see ``make_static``

    @classmethod
    def holding(cls, keys: torch.Tensor, rank: int, ik: torch.Tensor | None) -> LatentCache:
        """A full cache of exactly these (B, T, ·) tensors; copied only when it grows."""
        b, t = keys.shape[:2]
        lengths = torch.full((b,), t, dtype=torch.long, device=keys.device)
        return cls(keys.detach(), rank, None if ik is None else ik.detach(), lengths, t)

    @property
    def capacity(self) -> int:
        """Positions each row can hold before the buffers grow."""
        return self.latent.shape[1]

    @property
    def kv_latent(self) -> torch.Tensor:
        """(B, capacity, kv_lora_rank) view."""
        return self.latent[..., : self.rank]

    @property
    def k_rope(self) -> torch.Tensor:
        """(B, capacity, qk_rope_head_dim) view."""
        return self.latent[..., self.rank :]

    def positions(self, t: int) -> torch.Tensor:
        """(B, t) positions of ``t`` tokens appended to every row."""
        return self.lengths[:, None] + torch.arange(t, device=self.lengths.device)

    def append(self, keys: torch.Tensor, ik: torch.Tensor | None, positions: torch.Tensor) -> None:
        """Write (B, t, ·) entries at ``positions`` (B, t) and advance every row by t."""
        t = keys.shape[1]
        self._reserve(self.max_length + t)
        rows = torch.arange(keys.shape[0], device=keys.device)[:, None]
        self.latent[rows, positions] = keys.to(self.latent.dtype)
        if self.index_keys is not None and ik is not None:
            self.index_keys[rows, positions] = ik.to(self.index_keys.dtype)
        if self.static:
            self.lengths.add_(t)
        else:
            self.lengths = self.lengths + t
        self.max_length += t

    def views(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The filled part (B, max_length, ·) of latent keys and index keys.

        Row b is valid below ``lengths[b]``; later positions are masked by causality.
        """
        s = self.capacity if self.static else self.max_length
        ik = None if self.index_keys is None else self.index_keys[:, :s]
        return self.latent[:, :s], ik

    def make_static(self) -> None:
        """Fixed shapes from now on, as a captured CUDA graph replays them.

        Attention runs over the whole preallocated capacity (positions past a row's length
        are masked by causality) and lengths advance in place; the buffers must not grow.
        """
        self.lengths = self.lengths.clone()  # advanced in place: owned by this cache alone
        self.static = True

    def _reserve(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        if self.static:
            raise RuntimeError(f"a static cache holds {self.capacity} positions, {needed} needed")
        grown = max(needed, 2 * self.capacity, 16)
        self.latent = F.pad(self.latent, (0, 0, 0, grown - self.capacity))
        if self.index_keys is not None:
            self.index_keys = F.pad(self.index_keys, (0, 0, 0, grown - self.index_keys.shape[1]))

    def select(self, rows: torch.Tensor) -> LatentCache:
        """A cache of only ``rows`` (e.g. the sequences still generating)."""
        ik = None if self.index_keys is None else self.index_keys[rows]
        return LatentCache(
            self.latent[rows], self.rank, ik, self.lengths[rows], self.max_length, self.uniform
        )

    @staticmethod
    def stack(caches: Sequence[LatentCache], lengths: Sequence[int], capacity: int) -> LatentCache:
        """The rows of ``caches`` in one batched cache; ``lengths``: each row's (host ints)."""

        def cat(parts: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat(
                [
                    F.pad(p[:, :capacity], (0, 0, 0, capacity - min(capacity, p.shape[1])))
                    for p in parts
                ]
            )

        ik = None
        if caches[0].index_keys is not None:
            ik = cat([c.index_keys for c in caches])  # type: ignore[misc]
        lens = torch.tensor(list(lengths), dtype=torch.long, device=caches[0].lengths.device)
        latent = cat([c.latent for c in caches])
        uniform = len(set(lengths)) == 1
        return LatentCache(latent, caches[0].rank, ik, lens, max(lengths), uniform)
