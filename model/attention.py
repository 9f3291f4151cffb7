"""Multi-head Latent Attention (MLA) with an optional DeepSeek Sparse Attention indexer.

Queries go through a low-rank bottleneck (``q_lora_rank``); keys and values are compressed
into one latent of ``kv_lora_rank`` per position plus a single rotary key shared by all heads.
The cache keeps only that latent and the rotary key (and, with DSA, the indexer's keys).

Three ways to attend, one result:

- **expanded** (training, dense prefill): keys and values re-expanded per head from the
  latent by ``wkv_b``, then fused SDPA;
- **absorbed** (dense decoding): ``wkv_b``'s key half is folded into the queries and its
  value half applied after attention, so attention runs on the cached latent directly, as
  DeepSeek-V3's inference code does — the cache is never re-expanded;
- **sparse** (DSA): the indexer picks each query's top-k keys with a chunked running top-k
  and attention runs absorbed over the gathered keys only (:mod:`engram_sdk.model.sparse`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from engram_sdk.model.config import ModelConfig
from engram_sdk.model.indexer import Indexer, rope_rows
from engram_sdk.model.latent_cache import LatentCache
from engram_sdk.model.rope import yarn_softmax_scale
from engram_sdk.model.sparse import indexer_topk, sparse_attention, triton_available, visible
from torch import nn
from torch.nn.attention.bias import causal_lower_right

AttentionCache = LatentCache  # the name blocks use for the per-layer cache

ABSORB_MAX_QUERIES = 16  # up to this many new tokens per row, dense attention runs absorbed
QUERY_CHUNK = 1024  # queries per step of dense attention against a cache
PAD_VALUES_FOR_FLASH = True  # CUDA: pad v to the q/k head size so SDPA can pick flash


class MLA(nn.Module):
    """Multi-head Latent Attention (see the module docstring).

    ``sparse_backend`` picks the sparse kernels ("torch", "triton", "auto": Triton on CUDA
    for attention without gradient and for the indexer's scores); ``threshold_path`` how
    long prefill chunks select their top-k ("auto", "recompute", "stored", "rescored");
    ``indexer_stage`` ("off", "dense_warmup", "sparse") makes training forwards also leave
    the indexer's KL loss in ``indexer_loss`` (see :mod:`engram_sdk.model.indexer_training`).
    """

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
        self.sparse_backend = "torch"
        self.threshold_path = "stored"  # the fastest on the H200 (sparse_threshold.threshold_topk)
        self.indexer_stage = "off"
        self.indexer_loss: torch.Tensor = torch.zeros(())

    def forward(
        self,
        x: torch.Tensor,
        freqs: torch.Tensor,
        cache: LatentCache | None = None,
    ) -> tuple[torch.Tensor, LatentCache]:
        """x (B, T, D) after each row's cached tokens → (B, T, D), cache (updated in place).

        ``freqs`` is the whole rotary table (max_seq_len, rope/2); positions come from the
        cache's per-row lengths (0 without a cache).
        """
        b, t, _ = x.shape
        pos = (
            cache.positions(t)
            if cache is not None
            else torch.arange(t, device=x.device).expand(b, t)
        )
        rot = freqs[pos]  # (B, T, rope/2)
        q_latent, q_nope, q_rope, keys = self.project(x, rot)
        index_keys = self.indexer.keys(x, rot) if self.indexer is not None else None
        fresh = cache is None
        if cache is None:  # the new tensors become the cache (no copy until it grows)
            cache = LatentCache.holding(keys, self.cfg.kv_lora_rank, index_keys)
        else:
            cache.append(keys, index_keys, pos)
            keys, index_keys = cache.views()
        # host bound on the last query's position; a static cache (CUDA graph) scores its
        # whole capacity, masked by position, so a replayed step sees every key it should
        latest = (cache.capacity if cache.static else cache.max_length) - 1
        if self.indexer is not None and self.indexer_stage != "dense_warmup":
            idx = self._select(x, q_latent, rot, index_keys, pos, latest)
            out = self.attend_sparse(q_nope, q_rope, keys, idx)
            if self.training and self.indexer_stage == "sparse":
                self._indexer_loss(x, q_latent, rot, (q_nope, q_rope, keys), pos, idx)
        elif fresh:
            out = self.attend_expanded(q_nope, q_rope, keys, pos)
            if self.training and self.indexer_stage == "dense_warmup":
                self._indexer_loss(x, q_latent, rot, (q_nope, q_rope, keys), pos, None)
        elif t <= ABSORB_MAX_QUERIES:
            out = self.attend_absorbed(q_nope, q_rope, keys, pos)
        else:
            out = self.attend_expanded(q_nope, q_rope, keys, pos, uniform=cache.uniform)
        return self.wo(out.flatten(2)), cache

    def project(self, x: torch.Tensor, rot: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Query latent (or None), q_nope, rotated q_rope (B, T, H, ·); latent keys (B, T, r + rope).

        The latent keys are the normalised latent followed by the rotated rotary key.
        """
        cfg = self.cfg
        b, t, _ = x.shape
        nope, rope = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim
        q_latent = self.q_norm(self.wq_a(x)) if cfg.q_lora_rank > 0 else None
        q = self.wq_b(q_latent) if q_latent is not None else self.wq(x)
        q_nope, q_rope = q.view(b, t, cfg.n_heads, nope + rope).split([nope, rope], dim=-1)
        kv, k_rope = self.wkv_a(x).split([cfg.kv_lora_rank, rope], dim=-1)
        keys = torch.cat([self.kv_norm(kv), rope_rows(k_rope, rot)], dim=-1).to(kv.dtype)
        return q_latent, q_nope, rope_rows(q_rope, rot), keys

    # ---- the three ways to attend -----------------------------------------------------------
    def _absorb_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """wkv_b split per head: key part (H, nope, r) and value part (H, v, r)."""
        cfg = self.cfg
        w = self.wkv_b.weight.view(cfg.n_heads, cfg.qk_nope_head_dim + cfg.v_head_dim, -1)
        return w[:, : cfg.qk_nope_head_dim], w[:, cfg.qk_nope_head_dim :]

    def absorbed_queries(self, q_nope: torch.Tensor, q_rope: torch.Tensor) -> torch.Tensor:
        """Queries in latent space: (B, T, H, r + rope), to meet cat(latent, k_rope)."""
        w_k, _ = self._absorb_weights()
        return torch.cat([torch.einsum("bthd,hdr->bthr", q_nope, w_k), q_rope], dim=-1)

    def _values_from_latent(self, out_latent: torch.Tensor) -> torch.Tensor:
        _, w_v = self._absorb_weights()
        return torch.einsum("bthr,hvr->bthv", out_latent, w_v)

    def attend_expanded(
        self,
        q_nope: torch.Tensor,
        q_rope: torch.Tensor,
        keys: torch.Tensor,
        pos: torch.Tensor,
        *,
        uniform: bool = False,
    ) -> torch.Tensor:
        """Dense attention with per-head keys/values re-expanded from the latent → (B, T, H, v).

        ``uniform``: every row's queries are the last T of its S keys (one-shot or chunked
        prefill), so the fused kernel's bottom-right causal mask applies.
        """
        cfg = self.cfg
        b, t, h, _ = q_nope.shape
        s = keys.shape[1]
        kv, k_rope = keys.split([cfg.kv_lora_rank, cfg.qk_rope_head_dim], dim=-1)
        k_nope, value = (
            self.wkv_b(kv).view(b, s, h, -1).split([cfg.qk_nope_head_dim, cfg.v_head_dim], dim=-1)
        )
        k_full = torch.cat([k_nope, k_rope[:, :, None].expand(b, s, h, -1)], dim=-1).transpose(1, 2)
        queries = torch.cat([q_nope, q_rope], dim=-1).transpose(1, 2)
        value = value.transpose(1, 2)
        dv = value.shape[-1]
        if t == s or uniform:
            if PAD_VALUES_FOR_FLASH and value.is_cuda and dv < queries.shape[-1]:
                # the flash kernel wants one head size for q, k and v: zeros pad v, then cut
                value = F.pad(value, (0, queries.shape[-1] - dv))
            causal = dict(is_causal=True) if t == s else dict(attn_mask=causal_lower_right(t, s))
            out = F.scaled_dot_product_attention(queries, k_full, value, scale=self.scale, **causal)
            return out[..., :dv].transpose(1, 2)
        key_pos = torch.arange(s, device=keys.device)
        outs = []
        for t0 in range(0, t, QUERY_CHUNK):
            mask = visible(pos[:, t0 : t0 + QUERY_CHUNK], key_pos)[:, None]
            q_part = queries[:, :, t0 : t0 + QUERY_CHUNK]
            outs.append(
                F.scaled_dot_product_attention(
                    q_part, k_full, value, attn_mask=mask, scale=self.scale
                )
            )
        return torch.cat(outs, dim=2).transpose(1, 2)

    def attend_absorbed(
        self, q_nope: torch.Tensor, q_rope: torch.Tensor, keys: torch.Tensor, pos: torch.Tensor
    ) -> torch.Tensor:
        """Dense attention on the latent itself (queries absorbed) → (B, T, H, v)."""
        q = self.absorbed_queries(q_nope, q_rope).to(keys.dtype)  # the cache stays as stored
        scores = torch.einsum("bthc,bsc->bths", q, keys).float() * self.scale
        seen = visible(pos, torch.arange(keys.shape[1], device=keys.device))
        probs = scores.masked_fill(~seen[:, :, None], float("-inf")).softmax(-1)
        latent = keys[..., : self.cfg.kv_lora_rank]
        out_latent = torch.einsum("bths,bsr->bthr", probs.to(keys.dtype), latent)
        return self._values_from_latent(out_latent.to(q_nope.dtype))

    def attend_sparse(
        self, q_nope: torch.Tensor, q_rope: torch.Tensor, keys: torch.Tensor, idx: torch.Tensor
    ) -> torch.Tensor:
        """Absorbed attention over each query's selected keys ``idx`` (B, T, k) → (B, T, H, v)."""
        q = self.absorbed_queries(q_nope, q_rope)
        latent = keys[..., : self.cfg.kv_lora_rank]
        out_latent = sparse_attention(q, keys, latent, idx, self.scale, backend=self.sparse_backend)
        return self._values_from_latent(out_latent)

    # ---- the indexer --------------------------------------------------------------------------
    def _select(
        self,
        x: torch.Tensor,
        q_latent: torch.Tensor | None,
        rot: torch.Tensor,
        index_keys: torch.Tensor,
        pos: torch.Tensor,
        latest: int,
    ) -> torch.Tensor:
        assert self.indexer is not None
        with torch.no_grad():
            iq, w = self.indexer.queries(x, q_latent, rot)
        fused = self.sparse_backend != "torch" and x.is_cuda and triton_available()
        return indexer_topk(
            iq, w, index_keys, pos, self.cfg.dsa_topk, latest_position=latest, fused=fused,
            threshold_path=self.threshold_path,
        )  # fmt: skip

    def _indexer_loss(
        self,
        x: torch.Tensor,
        q_latent: torch.Tensor | None,
        rot: torch.Tensor,
        attention_inputs: tuple[torch.Tensor, ...],
        pos: torch.Tensor,
        idx: torch.Tensor | None,
    ) -> None:
        from engram_sdk.model.indexer_training import indexer_kl

        q_nope, q_rope, keys = (a.detach() for a in attention_inputs)
        with torch.no_grad():
            target_q = self.absorbed_queries(q_nope, q_rope)
        self.indexer_loss = indexer_kl(
            self.indexer,
            x.detach(),
            None if q_latent is None else q_latent.detach(),
            rot,
            target_q,
            keys,
            self.scale,
            pos,
            idx,
        )
