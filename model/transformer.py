"""The model: embedding → blocks → norm → head, with Engram addressing done once per forward."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from engram_sdk.model.block import Block, LayerCache
from engram_sdk.model.config import ModelConfig
from engram_sdk.model.hyper import HyperHead
from engram_sdk.model.rope import rope_frequencies
from torch import nn

from engram_sdk.engram import BatchAddresses, EngramTable
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


class Transformer(nn.Module):
    """DeepSeek-style MoE transformer with Engram layers, MLA, optional DSA and mHC."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        table, canon_vocab, pad = canonical_table(cfg)
        self.register_buffer("canonical", table, persistent=False)
        self._canonical_host = table.clone()  # stays on the host for host-side addressing
        self._host_memo: list[tuple[torch.Tensor, BatchAddresses]] = []
        self._hash_stream: torch.cuda.Stream | None = None
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
                Block(i, cfg, self.hasher.table_rows(i) if i in cfg.engram_layer_ids else None)
                for i in range(cfg.n_layers)
            ]
        )
        self.norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.hc_mult > 1 and cfg.hc_dynamic:
            self.hc_head = HyperHead(cfg.hc_mult, cfg.dim, cfg.hc_eps, cfg.norm_eps)
        elif cfg.hc_mult > 1:
            self.readout = nn.Parameter(torch.zeros(cfg.hc_mult))
        self.register_buffer(
            "freqs",
            rope_frequencies(
                cfg.qk_rope_head_dim,
                cfg.max_seq_len,
                cfg.rope_theta,
                cfg.yarn_factor,
                cfg.original_seq_len,
                cfg.beta_fast,
                cfg.beta_slow,
                magnitude=cfg.rope_attention_factor,
            ),
            persistent=False,
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
            layer: self.hasher.hash_torch(canon, layer, prefix=prefix, flat=True, compiled=fused)
            for layer in self.config.engram_layer_ids
        }

    def host_addresses(
        self, host_ids: torch.Tensor, prefix: torch.Tensor | None = None, remember: bool = False
    ) -> dict[int, torch.Tensor]:
        """:meth:`engram_addresses` of host ids, reusing a batch announced by ``prefetch_next``."""
        return self.host_batch(host_ids, prefix, remember).result()

    def host_batch(
        self, host_ids: torch.Tensor, prefix: torch.Tensor | None = None, remember: bool = False
    ) -> BatchAddresses:
        """The addresses of host ids, hashed when first asked for (possibly on another thread).

        ``remember`` keeps the batch for the next two calls, so a batch announced by
        ``prefetch_next`` is hashed once and its tables recognise it as the same batch.
        """
        if prefix is None:
            for ids, batch in self._host_memo:
                if ids.shape == host_ids.shape and torch.equal(ids, host_ids):
                    return batch
        ids = host_ids.clone()
        batch = BatchAddresses(lambda: self._hash_launch(ids, prefix), ids.numel())
        if remember and prefix is None:
            self._host_memo = [*self._host_memo[-1:], (ids, batch)]
        return batch

    def _hash_launch(
        self, ids: torch.Tensor, prefix: torch.Tensor | None
    ) -> Callable[[], dict[int, torch.Tensor]]:
        """Start hashing host ids; the returned function waits and gives host addresses.

        A CUDA model hashes on a side stream (microseconds of GPU work that queue behind
        nothing) and copies the addresses back; a CPU model hashes when the result is asked.
        """
        device = self.embed.weight.device
        if device.type != "cuda":
            return lambda: self.engram_addresses(ids, prefix)
        if self._hash_stream is None:
            self._hash_stream = torch.cuda.Stream(device, priority=-1)  # ahead of compute
        with torch.cuda.stream(self._hash_stream):
            on_device = ids.pin_memory().to(device, non_blocking=True)
            before = None if prefix is None else prefix.pin_memory().to(device, non_blocking=True)
            host = {
                layer: addresses.to("cpu", non_blocking=True)
                for layer, addresses in self.engram_addresses(on_device, before).items()
            }
            done = torch.cuda.Event()
            done.record()

        def finish() -> dict[int, torch.Tensor]:
            done.synchronize()
            return host

        return finish

    # ---- forward ------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        cache: ModelCache | None = None,
        *,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T, vocab) for ids (B, T); with ``cache``, continues from its state.

        ``return_hidden``: the final normed hidden states (B, T, dim) instead, for a loss that
        applies the head itself (``engram_sdk.model.loss``).
        """
        if input_ids.dim() != 2:
            raise InputError(f"input_ids must be (batch, seq), got {tuple(input_ids.shape)}")
        b, t = input_ids.shape
        cfg = self.config
        start = cache.length if cache is not None else 0
        if start + t > cfg.max_seq_len:
            raise InputError(
                f"sequence of {start + t} tokens exceeds max_seq_len {cfg.max_seq_len}"
            )
        host_ids = input_ids if input_ids.device.type == "cpu" else None
        if host_ids is not None and (
            int(host_ids.max()) >= cfg.vocab_size or int(host_ids.min()) < 0
        ):
            raise InputError(f"token ids must be in [0, {cfg.vocab_size})")  # (device ids: no sync)
        input_ids = input_ids.to(self.embed.weight.device, non_blocking=True)
        prefix = cache.last_ids if cache is not None else None
        batch = None  # host ids: store-backed tables hash them off this thread
        if host_ids is not None:
            batch = self.host_batch(host_ids, cache.last_host_ids if cache is not None else None)
        if input_ids.is_cuda or batch is None:
            addresses = self.engram_addresses(input_ids, prefix)
        else:
            addresses = batch.result()
        tables = self.engram_tables()
        for layer, table in tables.items():
            if batch is not None and getattr(table, "host_addresses", False):
                table.prepare(batch.layer(layer))
            else:
                table.prepare(addresses[layer])
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
        logits = self.norm(h) if return_hidden else self.head(self.norm(h))
        for table in tables.values():  # store-backed tables may use the host now
            launched = getattr(table, "forward_launched", None)
            if launched is not None:
                launched()
        return logits

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
