"""One transformer block: [Engram] → MLA → dense MLP or MoE, each on the (mHC) residual."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from engram_sdk.model.attention import MLA, AttentionCache
from engram_sdk.model.config import ModelConfig
from engram_sdk.model.hyper import DynamicHyperConnection, HyperConnection
from engram_sdk.model.moe import MLP, MoE
from torch import nn

from engram_sdk.engram import Engram


@dataclass
class LayerCache:
    """Decoding state of one block."""

    attn: AttentionCache | None = None
    conv: torch.Tensor | None = None


class Block(nn.Module):
    """Block ``layer_id`` of the model."""

    def __init__(
        self,
        layer_id: int,
        cfg: ModelConfig,
        engram_rows: int | None,
        *,
        allocate_engram_table: bool = True,
    ) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.engram = None
        if engram_rows is not None:
            self.engram = Engram(
                layer_id,
                cfg.dim,
                cfg.hc_mult,
                cfg.engram_max_ngram,
                cfg.engram_heads_per_ngram,
                cfg.engram_embed_per_ngram,
                engram_rows,
                cfg.engram_kernel_size,
                allocate_table=allocate_engram_table,
            )
        self.attn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = MLA(cfg)
        self.ffn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.ffn: nn.Module = (
            MLP(cfg.dim, cfg.inter_dim) if layer_id < cfg.n_dense_layers else MoE(cfg)
        )
        self.dynamic = cfg.hc_dynamic and cfg.hc_mult > 1
        if self.dynamic:
            hc = (cfg.hc_mult, cfg.dim, cfg.sinkhorn_iters, cfg.hc_eps, cfg.norm_eps)
            self.hc_attn: nn.Module = DynamicHyperConnection(*hc)
            self.hc_ffn: nn.Module = DynamicHyperConnection(*hc)
        else:
            self.hc_attn = HyperConnection(cfg.hc_mult, cfg.sinkhorn_iters)
            self.hc_ffn = HyperConnection(cfg.hc_mult, cfg.sinkhorn_iters)

    def forward(
        self,
        streams: torch.Tensor,
        freqs: torch.Tensor,
        addresses: torch.Tensor | None,
        cache: LayerCache,
    ) -> torch.Tensor:
        """streams (B, T, hc, D) → (B, T, hc, D); ``cache`` is updated in place."""
        if self.engram is not None:
            update, cache.conv = self.engram(streams, addresses, cache.conv)
            streams = streams + update
        if self.dynamic:
            x, maps = self.hc_attn.read(streams)
            out, cache.attn = self.attn(self.attn_norm(x), freqs, cache.attn)
            streams = self.hc_attn.write(streams, out, maps)
            x, maps = self.hc_ffn.read(streams)
            return self.hc_ffn.write(streams, self.ffn(self.ffn_norm(x)), maps)
        out, cache.attn = self.attn(self.attn_norm(self.hc_attn.read(streams)), freqs, cache.attn)
        streams = self.hc_attn.write(streams, out)
        out = self.ffn(self.ffn_norm(self.hc_ffn.read(streams)))
        return self.hc_ffn.write(streams, out)
