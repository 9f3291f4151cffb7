"""Multi-head Latent Attention (MLA) with an optional DeepSeek Sparse Attention indexer.

Queries go through a low-rank bottleneck (``q_lora_rank``); keys and values are compressed
into one latent of ``kv_lora_rank`` per position plus a single rotary key shared by all heads.
The cache keeps only that latent and the rotary key (and, with DSA, the indexer's keys).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from engram_sdk.model.config import ModelConfig
from engram_sdk.model.rope import apply_rope, yarn_softmax_scale
from torch import nn


@dataclass
class AttentionCache:
    """Per-layer decoding state: compressed latents, rotary keys, indexer keys."""

    kv_latent: torch.Tensor  # (B, T, kv_lora_rank)
    k_rope: torch.Tensor  # (B, T, qk_rope_head_dim)
    index_keys: torch.Tensor | None = None  # (B, T, index_head_dim)

    def append(self, kv: torch.Tensor, kr: torch.Tensor, ik: torch.Tensor | None) -> None:
        self.kv_latent = torch.cat([self.kv_latent, kv], dim=1)
        self.k_rope = torch.cat([self.k_rope, kr], dim=1)
        if ik is not None:
            self.index_keys = (
                ik if self.index_keys is None else torch.cat([self.index_keys, ik], dim=1)
            )


class Indexer(nn.Module):
    """DSA's lightning indexer: I[t, s] = Σ_h w_h(t) · relu(q_h(t) · k(s))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.index_n_heads, cfg.index_head_dim
        self.wq = nn.Linear(cfg.dim, cfg.index_n_heads * cfg.index_head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.index_head_dim, bias=False)
        self.weights = nn.Linear(cfg.dim, cfg.index_n_heads, bias=False)

    def keys(self, x: torch.Tensor) -> torch.Tensor:
        return self.wk(x)

    def scores(self, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim)
        w = self.weights(x) * self.n_heads**-0.5  # (B, T, H)
        logits = F.relu(torch.einsum("bthd,bsd->bths", q, keys))
        return torch.einsum("bths,bth->bts", logits, w)


class MLA(nn.Module):
    """Multi-head Latent Attention (see the module docstring)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, nope, rope, v = cfg.n_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
        if cfg.q_lora_rank > 0:
            self.wq_a = nn.Linear(cfg.dim, cfg.q_lora_rank, bias=False)
            self.q_norm = nn.RMSNorm(cfg.q_lora_rank, eps=cfg.norm_eps)
            self.wq_b = nn.Linear(cfg.q_lora_rank, h * (nope + rope), bias=False)
        else:
            self.wq = nn.Linear(cfg.dim, h * (nope + rope), bias=False)
        self.wkv_a = nn.Linear(cfg.dim, cfg.kv_lora_rank + rope, bias=False)
        self.kv_norm = nn.RMSNorm(cfg.kv_lora_rank, eps=cfg.norm_eps)
        self.wkv_b = nn.Linear(cfg.kv_lora_rank, h * (nope + v), bias=False)
        self.wo = nn.Linear(h * v, cfg.dim, bias=False)
        self.scale = yarn_softmax_scale(nope + rope, cfg.yarn_factor, cfg.mscale)
        self.indexer = Indexer(cfg) if cfg.dsa_topk > 0 else None

    def forward(
        self,
        x: torch.Tensor,
        freqs: torch.Tensor,
        cache: AttentionCache | None = None,
    ) -> tuple[torch.Tensor, AttentionCache]:
        """x (B, T, D) at positions start..start+T (start = cached length) → (B, T, D), cache."""
        cfg = self.cfg
        b, t, _ = x.shape
        h, nope, rope, v = cfg.n_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
        start = 0 if cache is None else cache.kv_latent.shape[1]
        q = self.wq_b(self.q_norm(self.wq_a(x))) if cfg.q_lora_rank > 0 else self.wq(x)
        q = q.view(b, t, h, nope + rope)
        q_nope, q_rope = q.split([nope, rope], dim=-1)
        q_rope = apply_rope(q_rope, freqs[start : start + t])
        kv, k_rope = self.wkv_a(x).split([cfg.kv_lora_rank, rope], dim=-1)
        kv = self.kv_norm(kv)
        k_rope = apply_rope(k_rope, freqs[start : start + t])
        index_keys = self.indexer.keys(x) if self.indexer is not None else None
        if cache is None:
            cache = AttentionCache(kv, k_rope, index_keys)
        else:
            cache.append(kv, k_rope, index_keys)
        s = cache.kv_latent.shape[1]
        k_nope, value = self.wkv_b(cache.kv_latent).view(b, s, h, nope + v).split([nope, v], dim=-1)
        keys = torch.cat([k_nope, cache.k_rope.unsqueeze(2).expand(b, s, h, rope)], dim=-1)
        queries = torch.cat([q_nope, q_rope], dim=-1)
        mask = self._mask(x, t, s, start, cache)
        out = F.scaled_dot_product_attention(
            queries.transpose(1, 2),
            keys.transpose(1, 2),
            value.transpose(1, 2),
            attn_mask=mask,
            is_causal=mask is None and t == s,
            scale=self.scale,
        )
        return self.wo(out.transpose(1, 2).reshape(b, t, h * v)), cache

    def _mask(
        self, x: torch.Tensor, t: int, s: int, start: int, cache: AttentionCache
    ) -> torch.Tensor | None:
        """Boolean (B or 1, 1, T, S) mask: causal, and with DSA only each query's top-k keys."""
        if self.indexer is None and (t == s or t == 1):
            return None
        pos_q = torch.arange(start, start + t, device=x.device)
        causal = pos_q[:, None] >= torch.arange(s, device=x.device)[None, :]  # (T, S)
        if self.indexer is None:
            return causal[None, None]
        scores = self.indexer.scores(x, cache.index_keys).masked_fill(~causal, float("-inf"))
        k = min(self.cfg.dsa_topk, s)
        top = scores.argsort(dim=-1, descending=True, stable=True)[..., :k]  # ties: earliest key
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top, True) & causal
        return keep[:, None]
