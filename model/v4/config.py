"""``V4Config``: DeepSeek-V4's architecture in one record (V4.1 adds Engram fields)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

V4_FORMAT_VERSION = 1
AttentionType = Literal[
    "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"
]
MlpType = Literal["hash_moe", "moe"]


class V4Config(BaseModel):
    """Everything that defines a DeepSeek-V4 model; saved with every checkpoint.

    Attention: shared-KV multi-query attention of ``head_dim`` with a sliding window of
    ``window_size`` in every layer; ``attn_types[i]`` adds compressed entries (one per
    ``compress_ratio_csa`` tokens picked by a lightning indexer, or one per
    ``compress_ratio_hca`` tokens, all of them). ``hc_mult`` residual streams mixed by
    dynamic mHC. ``mlp_types[i]``: ``hash_moe`` routes by a frozen token → experts table
    (``tid2eid``), ``moe`` by top-k of ``score_func`` affinities.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = V4_FORMAT_VERSION
    tokenizer: str | None = None
    vocab_size: int = 512
    dim: int = 64
    n_layers: int = 4
    norm_eps: float = 1e-6
    max_seq_len: int = 4096
    # attention
    n_heads: int = 4
    head_dim: int = 32
    rope_head_dim: int = 8
    q_lora_rank: int = 32
    o_groups: int = 2
    o_lora_rank: int = 16
    window_size: int = 8
    attn_types: list[AttentionType] = Field(
        default_factory=lambda: [
            "heavily_compressed_attention",
            "compressed_sparse_attention",
            "sliding_attention",
            "compressed_sparse_attention",
        ]
    )
    compress_ratio_csa: int = 4
    compress_ratio_hca: int = 8
    index_n_heads: int = 4
    index_head_dim: int = 16
    index_topk: int = 4
    # RoPE: plain for sliding layers; compressed layers use their own base and YaRN
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
    # MoE
    mlp_types: list[MlpType] = Field(default_factory=lambda: ["hash_moe", "moe", "moe", "moe"])
    n_routed_experts: int = 8
    n_shared_experts: int = 1
    n_activated_experts: int = 2
    moe_inter_dim: int = 32
    score_func: Literal["sqrtsoftplus", "softmax", "sigmoid"] = "sqrtsoftplus"
    route_scale: float = 1.5
    swiglu_limit: float = 10.0
    n_mtp_layers: int = Field(1, description="multi-token-prediction layers (not built)")
    # Engram (DeepSeek-V4.1; names as the reference's config). Empty layer list: no Engram.
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

    @model_validator(mode="after")
    def _check(self) -> V4Config:
        if self.format_version > V4_FORMAT_VERSION:
            raise ValueError(f"V4 config format {self.format_version} is newer than this SDK")
        for name in ("attn_types", "mlp_types"):
            if len(getattr(self, name)) != self.n_layers:
                raise ValueError(f"{name} needs one entry per layer ({self.n_layers})")
        if (self.n_heads * self.head_dim) % self.o_groups:
            raise ValueError("n_heads * head_dim must divide into o_groups")
        if self.rope_head_dim > min(self.head_dim, self.index_head_dim) or self.rope_head_dim % 2:
            raise ValueError("rope_head_dim must be even and fit in head_dim and index_head_dim")
        if self.n_activated_experts > self.n_routed_experts:
            raise ValueError("n_activated_experts must be <= n_routed_experts")
        if any(not 0 <= i < self.n_layers for i in self.engram_layer_ids):
            raise ValueError(f"engram_layer_ids must be in [0, {self.n_layers})")
        return self

    def compress_ratio(self, layer: int) -> int:
        """Tokens per compressed entry in ``layer`` (0: sliding window only)."""
        kind = self.attn_types[layer]
        if kind == "compressed_sparse_attention":
            return self.compress_ratio_csa
        return self.compress_ratio_hca if kind == "heavily_compressed_attention" else 0
