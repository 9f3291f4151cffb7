"""The DeepSeek-V4.1 model: embedding → hc streams → blocks → collapse → norm → head.

V4.1's mHC is single-pass: each site computes (pre, post, comb) from the streams it sees,
but its ``pre`` weights the *next* site's collapse (the attention collapses with the
previous block's FFN ``pre``, the FFN with this block's attention ``pre``; the first
attention reads stream 0, the final norm collapses with the last FFN ``pre``). There is no
separate mHC head. Engram adds its update to the streams before the block's attention.
"""

from __future__ import annotations

import torch
from engram_sdk.model.hyper import DynamicHyperConnection
from engram_sdk.model.rope import ComplexRopeTables
from engram_sdk.model.v4.engram import engram_hasher, engram_layer
from engram_sdk.model.v4.engram_model import EngramModelMixin
from engram_sdk.model.v4.moe import V4MoE
from engram_sdk.model.v4.rope import v4_frequencies
from engram_sdk.model.v4.v41_attention import V41Attention, V41Cache
from engram_sdk.model.v4.v41_compress import CompressorCache, GroupState
from engram_sdk.model.v4.v41_config import V41Config
from torch import nn

from engram_sdk.errors import InputError


def collapse(streams: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    """Σ_k pre_k · stream_k: (B, T, hc, D), (B, T, hc) → (B, T, D)."""
    return (pre.unsqueeze(-1) * streams.float()).sum(dim=2).to(streams.dtype)


class V41Block(nn.Module):
    """One V4.1 block over (B, T, hc, D) streams; returns the streams and its FFN ``pre``."""

    def __init__(self, cfg: V41Config, layer_id: int, engram_rows: int | None = None) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.engram = None if engram_rows is None else engram_layer(cfg, layer_id, engram_rows)
        hc = (cfg.hc_mult, cfg.dim, cfg.hc_sinkhorn_iters, cfg.hc_eps, cfg.norm_eps)
        self.hc_attn = DynamicHyperConnection(*hc)
        self.attn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = V41Attention(cfg, layer_id)
        self.hc_ffn = DynamicHyperConnection(*hc)
        self.ffn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.ffn = V4MoE(cfg)

    def forward(
        self, streams: torch.Tensor, pre: torch.Tensor, positions: torch.Tensor,
        freqs: torch.Tensor, group: GroupState | None, token_ids: torch.Tensor,
        engram_addresses: torch.Tensor | None = None, cache: V41Cache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        if self.engram is not None and engram_addresses is not None:
            streams = streams + self.engram(streams, engram_addresses)
        attn_pre, post, comb = self.hc_attn.mappings(streams)
        x = self.attn(self.attn_norm(collapse(streams, pre)), positions, freqs, group, cache)
        streams = self.hc_attn.write(streams, x, (post, comb))
        ffn_pre, post, comb = self.hc_ffn.mappings(streams)
        x = self.ffn(self.ffn_norm(collapse(streams, attn_pre)), token_ids)
        return self.hc_ffn.write(streams, x, (post, comb)), ffn_pre


class V41Transformer(ComplexRopeTables, EngramModelMixin, nn.Module):
    """DeepSeek-V4.1 (see :class:`V41Config`); ``forward`` takes an optional
    :class:`V41Cache` to continue a sequence chunk by chunk."""

    cache_class = V41Cache
    rope_tables = ("freqs_main", "freqs_compress")

    def rope_table(self, name: str) -> torch.Tensor:
        """A complex RoPE table from the config: plain (sliding layers) or YaRN (compressed)."""
        return v4_frequencies(self.config, compressed=name == "freqs_compress")

    def __init__(self, cfg: V41Config) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.hasher = None
        rows: dict[int, int] = {}
        if cfg.engram_layer_ids:  # token id → canonical id (identity until set)
            self.register_buffer("engram_token_map", torch.arange(cfg.vocab_size), persistent=False)
            self.hasher = engram_hasher(cfg, cfg.engram_pad_id)
            rows = {i: self.hasher.table_rows(i) for i in cfg.engram_layer_ids}
        self.layers = nn.ModuleList([V41Block(cfg, i, rows.get(i)) for i in range(cfg.n_layers)])
        self.norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        for name in self.rope_tables:
            self.register_buffer(name, self.rope_table(name), persistent=False)

    def forward(
        self, input_ids: torch.Tensor, token_mask: torch.Tensor | None = None,
        *, cache: V41Cache | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Logits (B, T, vocab) of ids (B, T) following the ``cache``'s tokens (if any).
        ``token_mask`` False marks DEAD positions (pads, image spans) for Engram's hashing."""
        cfg = self.config
        start = 0 if cache is None else cache.length
        self._check(input_ids, start)
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
        addresses = self.engram_addresses(input_ids, token_mask, cache)
        x = self.embed(input_ids)
        streams = x.unsqueeze(2).expand(*x.shape[:2], cfg.hc_mult, cfg.dim).contiguous()
        pre = torch.zeros(*streams.shape[:3], device=x.device)
        pre[..., 0] = 1.0
        group: GroupState | None = None
        for block in self.layers:
            i = block.layer_id
            if i in cfg.kv_source_layer_ids:
                group = GroupState() if cache is None else cache.sources.setdefault(
                    i, CompressorCache()).group  # fmt: skip
                group.chosen = None
            freqs = self.freqs_compress if cfg.compress_ratios[i] else self.freqs_main
            streams, pre = block(streams, pre, positions, freqs, group, input_ids,
                                 addresses.get(i), cache)  # fmt: skip
        if cache is not None:
            cache.length = start + input_ids.shape[1]
        return self.head(self.norm(collapse(streams, pre)))

    def _check(self, input_ids: torch.Tensor, start: int) -> None:
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


def build_v41(cfg: V41Config, device: str = "cpu", seed: int | None = 0) -> V41Transformer:
    """A V4.1 model for ``cfg``, initialised deterministically from ``seed``."""
    if seed is not None:
        torch.manual_seed(seed)
    return V41Transformer(cfg).to(device)
