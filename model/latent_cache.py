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
    """Per-layer decoding state; ``max_length`` is known on the host (no device sync)."""

    kv_latent: torch.Tensor  # (B, capacity, kv_lora_rank)
    k_rope: torch.Tensor  # (B, capacity, qk_rope_head_dim), already rotated
    index_keys: torch.Tensor | None  # (B, capacity, index_head_dim)
    lengths: torch.Tensor  # (B,) long, tokens held by each row
    max_length: int = 0

    @classmethod
    def empty(
        cls,
        like: Sequence[torch.Tensor | None],
        capacity: int,
    ) -> LatentCache:
        """An empty cache for tensors shaped like ``like`` = (kv, k_rope, index_keys)."""
        kv, kr, ik = like
        assert kv is not None and kr is not None
        b = kv.shape[0]

        def alloc(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.new_zeros(b, capacity, x.shape[-1])

        lengths = torch.zeros(b, dtype=torch.long, device=kv.device)
        return cls(alloc(kv), alloc(kr), alloc(ik), lengths)  # type: ignore[arg-type]

    @classmethod
    def holding(cls, kv: torch.Tensor, kr: torch.Tensor, ik: torch.Tensor | None) -> LatentCache:
        """A full cache of exactly these (B, T, ·) tensors; copied only when it grows."""
        b, t = kv.shape[:2]
        lengths = torch.full((b,), t, dtype=torch.long, device=kv.device)
        return cls(kv.detach(), kr.detach(), None if ik is None else ik.detach(), lengths, t)

    @property
    def capacity(self) -> int:
        """Positions each row can hold before the buffers grow."""
        return self.kv_latent.shape[1]

    def positions(self, t: int) -> torch.Tensor:
        """(B, t) positions of ``t`` tokens appended to every row."""
        return self.lengths[:, None] + torch.arange(t, device=self.lengths.device)

    def append(
        self, kv: torch.Tensor, kr: torch.Tensor, ik: torch.Tensor | None, positions: torch.Tensor
    ) -> None:
        """Write (B, t, ·) entries at ``positions`` (B, t) and advance every row by t."""
        t = kv.shape[1]
        self._reserve(self.max_length + t)
        rows = torch.arange(kv.shape[0], device=kv.device)[:, None]
        self.kv_latent[rows, positions] = kv.to(self.kv_latent.dtype)
        self.k_rope[rows, positions] = kr.to(self.k_rope.dtype)
        if self.index_keys is not None and ik is not None:
            self.index_keys[rows, positions] = ik.to(self.index_keys.dtype)
        self.lengths = self.lengths + t
        self.max_length += t

    def views(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The filled part: (B, max_length, ·) each; row b is valid below ``lengths[b]``."""
        s = self.max_length
        ik = None if self.index_keys is None else self.index_keys[:, :s]
        return self.kv_latent[:, :s], self.k_rope[:, :s], ik

    def _reserve(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        grown = max(needed, 2 * self.capacity, 16)

        def grow(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else F.pad(x, (0, 0, 0, grown - x.shape[1]))

        self.kv_latent = grow(self.kv_latent)  # type: ignore[assignment]
        self.k_rope = grow(self.k_rope)  # type: ignore[assignment]
        self.index_keys = grow(self.index_keys)

    def select(self, rows: torch.Tensor) -> LatentCache:
        """A cache of only ``rows`` (e.g. the sequences still generating)."""
        ik = None if self.index_keys is None else self.index_keys[rows]
        lengths = self.lengths[rows]
        return LatentCache(self.kv_latent[rows], self.k_rope[rows], ik, lengths, self.max_length)

    @staticmethod
    def stack(caches: Sequence[LatentCache], lengths: Sequence[int], capacity: int) -> LatentCache:
        """One batched cache of single-row caches whose lengths are ``lengths`` (host ints)."""

        def cat(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
            if parts[0] is None:
                return None
            padded = [
                F.pad(p[:, :capacity], (0, 0, 0, capacity - min(capacity, p.shape[1])))
                for p in parts
            ]  # type: ignore[union-attr]
            return torch.cat(padded, dim=0)

        kv = cat([c.kv_latent for c in caches])
        kr = cat([c.k_rope for c in caches])
        ik = cat([c.index_keys for c in caches])
        device = caches[0].lengths.device
        lens = torch.tensor(list(lengths), dtype=torch.long, device=device)
        return LatentCache(kv, kr, ik, lens, max(lengths))  # type: ignore[arg-type]
