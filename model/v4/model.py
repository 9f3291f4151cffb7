"""The DeepSeek-V4 model: embedding → hc streams → blocks → mHC head → norm → head."""

from __future__ import annotations

import torch
from engram_sdk.model.hyper import DynamicHyperConnection, HyperHead
from engram_sdk.model.rope import ComplexRopeTables
from engram_sdk.model.v4.attention import V4Attention
from engram_sdk.model.v4.cache import V4Cache, V4LayerCache
from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.engram import engram_hasher, engram_layer
from engram_sdk.model.v4.engram_model import EngramModelMixin
from engram_sdk.model.v4.moe import V4MoE
from engram_sdk.model.v4.rope import v4_frequencies
from torch import nn

from engram_sdk.errors import InputError


class V4Block(nn.Module):
    """One V4 block: mHC(attention) then mHC(MoE) over (B, T, hc, D) streams."""

    def __init__(self, cfg: V4Config, layer_id: int, engram_rows: int | None = None) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.engram = None if engram_rows is None else engram_layer(cfg, layer_id, engram_rows)
        self.compressed = cfg.attn_types[layer_id] != "sliding_attention"
        hc = (cfg.hc_mult, cfg.dim, cfg.hc_sinkhorn_iters, cfg.hc_eps, cfg.norm_eps)
        self.hc_attn = DynamicHyperConnection(*hc)
        self.attn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = V4Attention(cfg, layer_id)
        self.hc_ffn = DynamicHyperConnection(*hc)
        self.ffn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.ffn = V4MoE(cfg, hashed=cfg.mlp_types[layer_id] == "hash_moe")

    def forward(
        self,
        streams: torch.Tensor,
        freqs: torch.Tensor,
        token_ids: torch.Tensor,
        engram_addresses: torch.Tensor | None = None,
        token_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: V4LayerCache | None = None,
    ) -> torch.Tensor:
        if self.engram is not None and engram_addresses is not None:
            streams = streams + self.engram(streams, engram_addresses, token_mask)
        x, maps = self.hc_attn.read(streams)
        x = self.attn(self.attn_norm(x), freqs, positions, cache)
        streams = self.hc_attn.write(streams, x, maps)
        x, maps = self.hc_ffn.read(streams)
        return self.hc_ffn.write(streams, self.ffn(self.ffn_norm(x), token_ids), maps)


class V4Transformer(ComplexRopeTables, EngramModelMixin, nn.Module):
    """DeepSeek-V4 (see :class:`V4Config`); ``forward`` takes an optional :class:`V4Cache`
    to continue a sequence chunk by chunk."""

    cache_class = V4Cache
    rope_tables = ("freqs_main", "freqs_compress")

    def rope_table(self, name: str) -> torch.Tensor:
        """A complex RoPE table from the config: plain (sliding layers) or YaRN (compressed)."""
        return v4_frequencies(self.config, compressed=name == "freqs_compress")

    def __init__(self, cfg: V4Config) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.hasher = None
        rows: dict[int, int] = {}
        if cfg.engram_layer_ids:  # V4.1: token id → canonical id (identity until set)
            self.register_buffer("engram_token_map", torch.arange(cfg.vocab_size), persistent=False)
            self.hasher = engram_hasher(cfg, cfg.engram_pad_id)
            rows = {i: self.hasher.table_rows(i) for i in cfg.engram_layer_ids}
        self.layers = nn.ModuleList([V4Block(cfg, i, rows.get(i)) for i in range(cfg.n_layers)])
        self.hc_head = HyperHead(cfg.hc_mult, cfg.dim, cfg.hc_eps, cfg.norm_eps)
        self.norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        for name in self.rope_tables:
            self.register_buffer(name, self.rope_table(name), persistent=False)

    def hidden(
        self, input_ids: torch.Tensor, start: int = 0
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Streams after the embedding (B, T, hc, D) and each layer's rotations."""
        cfg = self.config
        if input_ids.dim() != 2:
            raise InputError(f"input_ids must be (batch, seq), got {tuple(input_ids.shape)}")
        if start + input_ids.shape[1] > cfg.max_seq_len:
            raise InputError(
                f"{start + input_ids.shape[1]} tokens exceed max_seq_len {cfg.max_seq_len}"
            )
        if input_ids.numel() and (
            int(input_ids.min()) < 0 or int(input_ids.max()) >= cfg.vocab_size
        ):
            raise InputError(f"token ids must be in [0, {cfg.vocab_size})")
        x = self.embed(input_ids)
        streams = x.unsqueeze(2).expand(*x.shape[:2], cfg.hc_mult, cfg.dim).contiguous()
        freqs = [self.freqs_compress if b.compressed else self.freqs_main for b in self.layers]
        return streams, freqs

    def forward(
        self, input_ids: torch.Tensor, token_mask: torch.Tensor | None = None,
        *, cache: V4Cache | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Logits (B, T, vocab) for ids (B, T) following the ``cache``'s tokens (if any);
        ``token_mask`` False marks DEAD positions (pads, image spans) for Engram."""
        start = 0 if cache is None else cache.length
        streams, freqs = self.hidden(input_ids, start)
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
        addresses = self.engram_addresses(input_ids, token_mask, cache)
        for block, f in zip(self.layers, freqs, strict=True):
            layer_cache = None if cache is None else cache.layer(block.layer_id)
            streams = block(streams, f, input_ids, addresses.get(block.layer_id), token_mask,
                            positions, layer_cache)  # fmt: skip
        if cache is not None:
            cache.length = start + input_ids.shape[1]
        return self.head(self.norm(self.hc_head(streams)))


def build_v4(cfg: V4Config, device: str = "cpu", seed: int | None = 0) -> V4Transformer:
    """A V4 model for ``cfg``, initialised deterministically from ``seed``."""
    if seed is not None:
        torch.manual_seed(seed)
    return V4Transformer(cfg).to(device)
