"""``V41Config``: DeepSeek-V4.1's architecture in one record (its own, not V4's).

V4.1 keeps V4's shared-KV attention, grouped output projection, sinks, mHC and clipped
SwiGLU experts, and changes how the long-range KV is made and shared:

* **CED** (causal encoder-decoder): ``compress_ratios[i]`` is 0 (sliding window only),
  ``r > 1`` (every ``r`` tokens pooled into one latent: the "encoder") or 1 (one latent per
  token, projected once: the "decoder").
* **CSA2**: only ``kv_source_layer_ids`` own a compressor; every compressed layer after a
  source (up to the next) attends the source's compressed KV. Only
  ``index_source_layer_ids`` run the indexer; the layers in between reuse its top-k.
  ``candidate_source_layer_id`` (negative: off) keeps ``candidate_topk_blocks`` blocks of
  ``candidate_block_size`` entries; later index sources choose only inside them.
* **Engram** at ``engram_layer_ids`` (fields named as the reference's config).
* **DSpark** draft layers (``n_mtp_layers``) are described, not built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

V41_FORMAT_VERSION = 1


class V41Config(BaseModel):
    """Everything that defines a DeepSeek-V4.1 model; saved with every checkpoint."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = V41_FORMAT_VERSION
    tokenizer: str | None = None
    vocab_size: int = 512
    dim: int = 64
    n_layers: int = 6
    norm_eps: float = 1e-20
    max_seq_len: int = 4096
    # attention
    n_heads: int = 4
    head_dim: int = 32
    rope_head_dim: int = 8
    q_lora_rank: int = 32
    o_groups: int = 2
    o_lora_rank: int = 16
    window_size: int = 8
    compress_ratios: list[int] = Field(default_factory=lambda: [0, 0, 2, 2, 1, 1])
    kv_source_layer_ids: list[int] = Field(default_factory=lambda: [2, 4])
    index_source_layer_ids: list[int] = Field(default_factory=lambda: [2, 4])
    candidate_source_layer_id: int = -1
    candidate_topk_blocks: int = 2048
    candidate_block_size: int = 8
    index_n_heads: int = 4
    index_head_dim: int = 32
    index_topk: int = 4
    # RoPE: plain for sliding-only layers; compressed layers use their own base and YaRN
    rope_theta: float = 10000.0
    compress_rope_theta: float = 160000.0
    rope_factor: float = 1.0
    original_seq_len: int = 4096
    beta_fast: int = 32
    beta_slow: int = 1
    # mHC
    hc_mult: int = 4
    hc_sinkhorn_iters: int = 20
    hc_eps: float = 1e-6
    # MoE (top-k routed in every layer)
    n_routed_experts: int = 8
    n_shared_experts: int = 1
    n_activated_experts: int = 2
    moe_inter_dim: int = 32
    score_func: Literal["sqrtsoftplus", "softmax", "sigmoid"] = "sqrtsoftplus"
    gate_temp: float = 1.0
    norm_topk_prob: bool = True
    route_scale: float = 1.5
    swiglu_limit: float = 10.0
    # Engram (names as the reference's config). Empty layer list: no Engram.
    engram_layer_ids: list[int] = Field(default_factory=list)
    engram_vocab_size: int = Field(16_000_000, description="where each head's prime search starts")
    engram_num_embeddings: list[int] | None = Field(
        None, description="rows of each layer's table (checked against the primes when given)"
    )
    engram_max_ngram_size: int = 4
    engram_n_heads: int = 8
    engram_head_dim: int = 256
    engram_pad_id: int = Field(2, description="token id whose canonical id fills blocked slots")
    engram_compressed_vocab_size: int | None = Field(
        None, description="canonical vocabulary size (None: the token ids themselves)"
    )
    # DSpark draft layers (described by the release, not built here)
    n_mtp_layers: int = Field(0, description="DSpark draft layers (not built)")

    @model_validator(mode="after")
    def _check(self) -> V41Config:
        if self.format_version > V41_FORMAT_VERSION:
            raise ValueError(f"V4.1 config format {self.format_version} is newer than this SDK")
        n, ratios = self.n_layers, self.compress_ratios
        if len(ratios) != n or any(r < 0 for r in ratios):
            raise ValueError(f"compress_ratios needs one entry >= 0 per layer ({n})")
        for name in ("kv_source_layer_ids", "index_source_layer_ids"):
            if any(not 0 <= i < n or ratios[i] == 0 for i in getattr(self, name)):
                raise ValueError(f"{name} must be layers in [0, {n}) with compress_ratios > 0")
        sources = self.kv_source_layer_ids
        if any(r and not any(s <= i for s in sources) for i, r in enumerate(ratios)):
            raise ValueError("every layer with compress_ratios > 0 needs a kv source at or before")
        if any(ratios[i] != ratios[self.kv_source(i)] for i in range(n) if ratios[i]):
            raise ValueError("a compressed layer must share its kv source's compress ratio")
        if any(s not in self.index_source_layer_ids for s in sources):
            raise ValueError("every kv source must also be an index source")
        cand = self.candidate_source_layer_id
        if cand >= 0 and cand not in self.index_source_layer_ids:
            raise ValueError("candidate_source_layer_id must be an index source (or negative)")
        if cand >= 0 and any(
            i > cand and self.kv_source(i) != self.kv_source(cand)
            for i in self.index_source_layer_ids
        ):
            raise ValueError("index sources after the candidate source must share its kv source")
        if (self.n_heads * self.head_dim) % self.o_groups:
            raise ValueError("n_heads * head_dim must divide into o_groups")
        if self.rope_head_dim > min(self.head_dim, self.index_head_dim) or self.rope_head_dim % 2:
            raise ValueError("rope_head_dim must be even and fit in head_dim and index_head_dim")
        if self.n_activated_experts > self.n_routed_experts:
            raise ValueError("n_activated_experts must be <= n_routed_experts")
        if any(not 0 <= i < n for i in self.engram_layer_ids):
            raise ValueError(f"engram_layer_ids must be in [0, {n})")
        return self

    def kv_source(self, layer: int) -> int:
        """The kv source layer whose compressed KV ``layer`` attends (the last at or before)."""
        return max(s for s in self.kv_source_layer_ids if s <= layer)
