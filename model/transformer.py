"""The model: embedding → blocks → norm → head, with Engram addressing done once per forward.

The model knows nothing of stores or threads: each Engram layer looks its rows up in its
own table, and ``forward`` takes precomputed ``addresses`` from whoever computed them (the
table runtime, :mod:`engram_sdk.table_runtime`, which wraps the model from outside).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from engram_sdk.model.block import Block, LayerCache
from engram_sdk.model.config import ModelConfig
from engram_sdk.model.hyper import HyperHead
from engram_sdk.model.rope import ComplexRopeTables, rope_frequencies
from torch import nn

from engram_sdk.engram import EngramTable
from engram_sdk.errors import InputError
from engram_sdk.hashing import NgramConfig, NgramHasher


@dataclass
class ModelCache:
    """Decoding state of the whole model: per-block caches and the last ids (Engram prefix)."""

    layers: list[LayerCache] = field(default_factory=list)
    last_ids: torch.Tensor | None = None  # (B, engram context) canonical ids
    last_host_ids: torch.Tensor | None = None  # the same on the host, when ids come from the host
    length: int = 0


def canonical_table(cfg: ModelConfig) -> tuple[torch.Tensor, int, int]:
    """Token id → canonical id table, canonical vocabulary size and pad id for this config."""
    if cfg.tokenizer is None:
        return torch.arange(cfg.vocab_size), cfg.vocab_size, 0
    from engram_sdk.tokenizer import get_tokenizer

    tok = get_tokenizer(cfg.tokenizer)
    cmap = tok.canonical
    table = torch.from_numpy(cmap.table.astype("int64"))
    if len(table) < cfg.vocab_size:  # padded vocabularies map extra ids to themselves
        extra = torch.arange(len(table), cfg.vocab_size) - len(table) + cmap.size
        table = torch.cat([table, extra])
    return table, cmap.size + max(0, cfg.vocab_size - len(cmap.table)), int(cmap.table[tok.eot_id])


class Transformer(ComplexRopeTables, nn.Module):
    """DeepSeek-style MoE transformer with Engram layers, MLA, optional DSA and mHC."""

    rope_tables = ("freqs",)

    def __init__(self, cfg: ModelConfig, *, engram_tables: bool = True) -> None:
        """``engram_tables=False`` builds the Engram layers without rows (to serve from a store)."""
        super().__init__()
        self.config = cfg
        table, canon_vocab, pad = canonical_table(cfg)
        self.register_buffer("canonical", table, persistent=False)
        self._canonical_host = table.clone()  # stays on the host for host-side addressing
        self.hasher = NgramHasher(
            NgramConfig(
                vocab_size=canon_vocab,
                max_ngram_size=cfg.engram_max_ngram,
                n_head_per_ngram=cfg.engram_heads_per_ngram,
                engram_vocab_size=cfg.engram_table_size,
                layer_ids=cfg.engram_layer_ids or [0],
                pad_id=pad,
                seed=cfg.engram_seed,
            )
        )
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(
            [
                Block(
                    i,
                    cfg,
                    self.hasher.table_rows(i) if i in cfg.engram_layer_ids else None,
                    allocate_engram_table=engram_tables,
                )
                for i in range(cfg.n_layers)
            ]
        )
        self.norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.hc_mult > 1 and cfg.hc_dynamic:
            self.hc_head = HyperHead(cfg.hc_mult, cfg.dim, cfg.hc_eps, cfg.norm_eps)
        elif cfg.hc_mult > 1:
            self.readout = nn.Parameter(torch.zeros(cfg.hc_mult))
        self.register_buffer("freqs", self.rope_table("freqs"), persistent=False)

    def rope_table(self, name: str) -> torch.Tensor:
        """The complex RoPE table (``freqs``) from the config."""
        cfg = self.config
        return rope_frequencies(
            cfg.qk_rope_head_dim,
            cfg.max_seq_len,
            cfg.rope_theta,
            cfg.yarn_factor,
            cfg.original_seq_len,
            cfg.beta_fast,
            cfg.beta_slow,
            magnitude=cfg.rope_attention_factor,
        )

    # ---- Engram tables ------------------------------------------------------------------
    def engram_tables(self) -> dict[int, EngramTable]:
        """The table behind each Engram layer."""
        return {b.layer_id: b.engram.table for b in self.blocks if b.engram is not None}

    def set_engram_table(self, layer_id: int, table: EngramTable) -> None:
        """Serve one Engram layer's rows from ``table`` (e.g. a store-backed one)."""
        block = self.blocks[layer_id]
        if block.engram is None:
            raise InputError(
                f"layer {layer_id} has no Engram; Engram layers: {self.config.engram_layer_ids}"
            )
        block.engram.set_table(table)

    def engram_addresses(
        self, input_ids: torch.Tensor, prefix: torch.Tensor | None = None
    ) -> dict[int, torch.Tensor]:
        """Flat addresses (B, T, heads) of every Engram layer; ``prefix``: previous canonical ids."""
        table = (
            self.canonical if input_ids.device == self.canonical.device else self._canonical_host
        )
        canon = table.to(input_ids.device)[input_ids]
        fused = canon.is_cuda
        return {
            layer: self.hasher.hash_torch(
                canon, layer, prefix=prefix, flat=True, compiled=fused, trusted=True
            )
            for layer in self.config.engram_layer_ids
        }

    # ---- forward ------------------------------------------------------------------------
    def check_input(self, input_ids: torch.Tensor, cache: ModelCache | None = None) -> None:
        """Raise :class:`InputError` unless ``input_ids`` (B, T) fit this model and ``cache``.

        Host ids are range-checked here; ids on a device are not (that would wait for it).
        """
        if input_ids.dim() != 2:
            raise InputError(f"input_ids must be (batch, seq), got {tuple(input_ids.shape)}")
        start = cache.length if cache is not None else 0
        if start + input_ids.shape[1] > self.config.max_seq_len:
            raise InputError(
                f"sequence of {start + input_ids.shape[1]} tokens exceeds max_seq_len "
                f"{self.config.max_seq_len}"
            )
        on_host = input_ids.device.type == "cpu" and input_ids.numel() > 0
        if on_host and (int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0):
            raise InputError(f"token ids must be in [0, {self.config.vocab_size})")

    def forward(
        self,
        input_ids: torch.Tensor,
        cache: ModelCache | None = None,
        *,
        addresses: Mapping[int, torch.Tensor] | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T, vocab) for ids (B, T); with ``cache``, continues from its state.

        ``addresses``: every Engram layer's flat addresses (B, T, H) on the model's device,
        as :meth:`engram_addresses` gives them (after the cache's prefix); hashed here if None.
        ``return_hidden``: the final normed hidden states (B, T, dim) instead, for a loss that
        applies the head itself (``engram_sdk.model.loss``).
        """
        self.check_input(input_ids, cache)
        b, t = input_ids.shape
        cfg = self.config
        start = cache.length if cache is not None else 0
        host_ids = input_ids if input_ids.device.type == "cpu" else None
        input_ids = input_ids.to(self.embed.weight.device, non_blocking=True)
        if addresses is None:
            prefix = cache.last_ids if cache is not None else None
            addresses = self.engram_addresses(input_ids, prefix)
        elif set(addresses) != set(cfg.engram_layer_ids):
            raise InputError(
                f"addresses are for Engram layers {sorted(addresses)}, "
                f"the model's are {sorted(cfg.engram_layer_ids)}"
            )
        layer_caches = (
            cache.layers
            if cache is not None and cache.layers
            else [LayerCache() for _ in self.blocks]
        )
        streams = self.embed(input_ids).unsqueeze(2).expand(b, t, cfg.hc_mult, cfg.dim).contiguous()
        for block, lc in zip(self.blocks, layer_caches, strict=True):
            streams = block(streams, self.freqs, addresses.get(block.layer_id), lc)
        if cfg.hc_mult > 1 and cfg.hc_dynamic:
            h = self.hc_head(streams)
        elif cfg.hc_mult > 1:
            h = torch.einsum(
                "bthd,h->btd", streams, torch.softmax(self.readout, 0).to(streams.dtype)
            )
        else:
            h = streams[:, :, 0]
        if cache is not None:
            cache.layers = layer_caches
            canon = self.canonical[input_ids]
            joined = canon if cache.last_ids is None else torch.cat([cache.last_ids, canon], dim=1)
            cache.last_ids = joined[:, -self.hasher.context :]
            if host_ids is not None:
                host = self._canonical_host[host_ids]
                if cache.last_host_ids is not None:
                    host = torch.cat([cache.last_host_ids, host], dim=1)
                cache.last_host_ids = host[:, -self.hasher.context :]
            cache.length = start + t
        return self.norm(h) if return_hidden else self.head(self.norm(h))

    def moe_layers(self) -> list[nn.Module]:
        """Every MoE feed-forward (for bias updates and auxiliary losses)."""
        from engram_sdk.model.moe import MoE

        return [b.ffn for b in self.blocks if isinstance(b.ffn, MoE)]

    # ---- generation ---------------------------------------------------------------------
    def generate(self, prompt_ids: Any, max_new_tokens: int, **kwargs: Any) -> list[int]:
        """New token ids after ``prompt_ids`` (see :func:`engram_sdk.model.generate.generate`)."""
        from engram_sdk.model.generate import generate

        return generate(self, prompt_ids, max_new_tokens, **kwargs)

    def stream(self, prompt_ids: Any, max_new_tokens: int, **kwargs: Any) -> Iterator[int]:
        """New token ids one at a time, as they are decoded."""
        from engram_sdk.model.generate import stream

        return stream(self, prompt_ids, max_new_tokens, **kwargs)
