"""What the V4 and V4.1 models share around Engram: addressing with DEAD tokens and a
cached look-back, swapping a layer's table, the token map, and greedy generation."""

from __future__ import annotations

from typing import Any

import torch
from engram_sdk.model.v4.engram import engram_hasher

from engram_sdk.engram import EngramTable
from engram_sdk.errors import InputError
from engram_sdk.hashing import DEAD_ID, NgramHasher


class EngramModelMixin:
    """Mixed into a V4-family ``nn.Module`` that has ``config``, ``layers`` (blocks with an
    ``engram`` or None), ``embed``, ``hasher`` and ``engram_token_map``; ``cache_class`` is
    the decoding cache :meth:`generate` uses."""

    config: Any
    layers: Any
    embed: Any
    hasher: NgramHasher | None
    engram_token_map: torch.Tensor
    cache_class: type

    def engram_addresses(
        self, input_ids: torch.Tensor, token_mask: torch.Tensor | None = None, cache: Any = None
    ) -> dict[int, torch.Tensor]:
        """Flat addresses (B, T, columns) of every Engram layer; masked-out tokens are DEAD;
        the look-back continues from the cache's last tokens."""
        if self.hasher is None:
            return {}
        canon = self.engram_token_map[input_ids]
        if token_mask is not None:
            canon = torch.where(token_mask, canon, DEAD_ID)
        prefix = None if cache is None else cache.engram_history
        if cache is not None:
            seen = canon if prefix is None else torch.cat([prefix, canon], dim=1)
            cache.engram_history = seen[:, -(self.config.engram_max_ngram_size - 1) :]
        return {  # canonical ids from the model's own map (or DEAD): no range check, no sync
            layer: self.hasher.hash_torch(canon, layer, prefix=prefix, flat=True, trusted=True)
            for layer in self.config.engram_layer_ids
        }

    def set_engram_table(self, layer_id: int, table: EngramTable) -> None:
        """Serve one Engram layer's rows from ``table`` (e.g. FP8 rows in a store)."""
        block = self.layers[layer_id]
        if block.engram is None:
            raise InputError(
                f"layer {layer_id} has no Engram; Engram layers: {self.config.engram_layer_ids}"
            )
        block.engram.set_table(table)

    def set_token_map(self, token_map: torch.Tensor) -> None:
        """Use ``token_map`` (vocab,) as the token → canonical id map of Engram addressing."""
        if self.hasher is None:
            raise InputError("this model has no Engram layers")
        cfg = self.config
        self.engram_token_map = torch.as_tensor(token_map, dtype=torch.long).to(
            self.embed.weight.device
        )
        self.hasher = engram_hasher(cfg, int(self.engram_token_map[cfg.engram_pad_id]))

    @torch.no_grad()
    def generate(self, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation with the model's decoding cache (prefill, then one token a
        step)."""
        cache = self.cache_class()
        ids = torch.tensor([prompt_ids], device=self.embed.weight.device)
        out: list[int] = []
        for _ in range(max_new_tokens):
            ids = self(ids, cache=cache)[:, -1].argmax(-1, keepdim=True)  # type: ignore[operator]
            out.append(int(ids))
        return out
