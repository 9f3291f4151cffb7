"""The DeepSeek-V4 model: embedding → hc streams → blocks → mHC head → norm → head."""

from __future__ import annotations

import torch
from engram_sdk.model.v4.attention import V4Attention
from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.hyper import DynamicHyperConnection, HyperHead
from engram_sdk.model.v4.moe import V4MoE
from engram_sdk.model.v4.rope import v4_frequencies
from torch import nn

from engram_sdk.errors import InputError


class V4Block(nn.Module):
    """One V4 block: mHC(attention) then mHC(MoE) over (B, T, hc, D) streams."""

    def __init__(self, cfg: V4Config, layer_id: int) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.compressed = cfg.attn_types[layer_id] != "sliding_attention"
        hc = (cfg.hc_mult, cfg.dim, cfg.hc_sinkhorn_iters, cfg.hc_eps, cfg.norm_eps)
        self.hc_attn = DynamicHyperConnection(*hc)
        self.attn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = V4Attention(cfg, layer_id)
        self.hc_ffn = DynamicHyperConnection(*hc)
        self.ffn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.ffn = V4MoE(cfg, hashed=cfg.mlp_types[layer_id] == "hash_moe")

    def forward(
        self, streams: torch.Tensor, freqs: torch.Tensor, token_ids: torch.Tensor
    ) -> torch.Tensor:
        x, maps = self.hc_attn.read(streams)
        streams = self.hc_attn.write(streams, self.attn(self.attn_norm(x), freqs), maps)
        x, maps = self.hc_ffn.read(streams)
        return self.hc_ffn.write(streams, self.ffn(self.ffn_norm(x), token_ids), maps)


class V4Transformer(nn.Module):
    """DeepSeek-V4 (see :class:`V4Config`); forward recomputes the whole sequence."""

    def __init__(self, cfg: V4Config) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList([V4Block(cfg, i) for i in range(cfg.n_layers)])
        self.hc_head = HyperHead(cfg.hc_mult, cfg.dim, cfg.hc_eps, cfg.norm_eps)
        self.norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.register_buffer("freqs_main", v4_frequencies(cfg, False), persistent=False)
        self.register_buffer("freqs_compress", v4_frequencies(cfg, True), persistent=False)

    def hidden(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Streams after the embedding (B, T, hc, D) and each layer's rotations."""
        cfg = self.config
        if input_ids.dim() != 2:
            raise InputError(f"input_ids must be (batch, seq), got {tuple(input_ids.shape)}")
        if input_ids.shape[1] > cfg.max_seq_len:
            raise InputError(f"{input_ids.shape[1]} tokens exceed max_seq_len {cfg.max_seq_len}")
        if input_ids.numel() and (
            int(input_ids.min()) < 0 or int(input_ids.max()) >= cfg.vocab_size
        ):
            raise InputError(f"token ids must be in [0, {cfg.vocab_size})")
        x = self.embed(input_ids)
        streams = x.unsqueeze(2).expand(*x.shape[:2], cfg.hc_mult, cfg.dim).contiguous()
        freqs = [self.freqs_compress if b.compressed else self.freqs_main for b in self.layers]
        return streams, freqs

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for ids (B, T)."""
        streams, freqs = self.hidden(input_ids)
        for block, f in zip(self.layers, freqs, strict=True):
            streams = block(streams, f, input_ids)
        return self.head(self.norm(self.hc_head(streams)))

    @torch.no_grad()
    def generate(self, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation (recomputes the sequence at every step)."""
        ids = torch.tensor([prompt_ids], device=self.embed.weight.device)
        for _ in range(max_new_tokens):
            ids = torch.cat([ids, self(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
        return ids[0, len(prompt_ids) :].tolist()


def build_v4(cfg: V4Config, device: str = "cpu", seed: int | None = 0) -> V4Transformer:
    """A V4 model for ``cfg``, initialised deterministically from ``seed``."""
    if seed is not None:
        torch.manual_seed(seed)
    return V4Transformer(cfg).to(device)
