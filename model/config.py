"""``ModelConfig``: one pydantic config (DeepSeek's field names) and the named presets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MODEL_FORMAT_VERSION = 2  # 2: dynamic mHC (hc_dynamic) with 20 Sinkhorn iterations


class ModelConfig(BaseModel):
    """Everything that defines the model; saved with every checkpoint.

    Names follow deepseek-ai/DeepSeek-V3 ``ModelArgs`` (MLA, MoE, YaRN) and
    deepseek-ai/Engram (Engram layers); ``hc_mult`` is the mHC stream count (1 = plain
    residual); ``dsa_topk`` > 0 turns on DeepSeek Sparse Attention.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = MODEL_FORMAT_VERSION
    tokenizer: str | None = Field(
        "cl100k_base", description="tiktoken encoding of the ids, or None"
    )
    vocab_size: int = 100277
    dim: int = 64
    n_layers: int = 4
    n_dense_layers: int = 1
    inter_dim: int = 128
    norm_eps: float = 1e-6
    max_seq_len: int = 4096
    # MLA
    n_heads: int = 4
    q_lora_rank: int = 32
    kv_lora_rank: int = 32
    qk_nope_head_dim: int = 16
    qk_rope_head_dim: int = 8
    v_head_dim: int = 16
    # RoPE / YaRN
    rope_theta: float = 10000.0
    rope_factor: float = 1.0
    original_seq_len: int = 4096
    beta_fast: int = 32
    beta_slow: int = 1
    mscale: float = 1.0
    yarn: bool | None = Field(
        None,
        description="YaRN on/off; None follows DeepSeek-V3's rule max_seq_len > original_seq_len",
    )
    rope_attention_factor: float = Field(
        1.0, description="magnitude of the rotations (HF's YaRN attention_factor on cos/sin)"
    )
    # DeepSeek Sparse Attention (0 = dense)
    dsa_topk: int = 0
    index_n_heads: int = 4
    index_head_dim: int = 32
    # MoE
    n_routed_experts: int = 8
    n_shared_experts: int = 1
    n_activated_experts: int = 2
    n_expert_groups: int = 2
    n_limited_groups: int = 1
    route_scale: float = 1.0
    score_func: Literal["sigmoid", "softmax", "sqrtsoftplus"] = "sigmoid"
    norm_topk_prob: bool = True
    gate_bias: bool = Field(
        True, description="routing bias (aux-loss-free balancing); without it groups score by max"
    )
    moe_inter_dim: int = 64
    bias_update_speed: float = 0.001
    seq_aux_alpha: float = 0.0
    # mHC
    hc_mult: int = 2
    sinkhorn_iters: int = 20
    hc_dynamic: bool = Field(
        True, description="per-token mHC mappings (the paper, V4); False: format-1 static mHC"
    )
    hc_eps: float = 1e-6
    # Engram
    engram_layer_ids: list[int] = Field(default_factory=lambda: [1, 2])
    engram_max_ngram: int = 3
    engram_heads_per_ngram: int = 2
    engram_embed_per_ngram: int = 32
    engram_table_size: list[int] = Field(default_factory=lambda: [4099, 4099])
    engram_kernel_size: int = 4
    engram_seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _format_1_defaults(cls, data: object) -> object:
        """Configs saved before format 2 ran static mHC with 10 Sinkhorn iterations."""
        if isinstance(data, dict) and data.get("format_version", MODEL_FORMAT_VERSION) < 2:
            data = {"hc_dynamic": False, "sinkhorn_iters": 10, **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.format_version > MODEL_FORMAT_VERSION:
            raise ValueError(
                f"model config format {self.format_version} is newer than this engram-sdk"
            )
        if any(not 0 <= i < self.n_layers for i in self.engram_layer_ids):
            raise ValueError(
                f"engram_layer_ids {self.engram_layer_ids} must be in [0, {self.n_layers})"
            )
        if len(self.engram_table_size) != self.engram_max_ngram - 1:
            raise ValueError(
                "engram_table_size needs one size per N-gram order 2..engram_max_ngram"
            )
        if self.n_activated_experts > self.n_routed_experts:
            raise ValueError("n_activated_experts must be <= n_routed_experts")
        if self.n_routed_experts % self.n_expert_groups:
            raise ValueError("n_routed_experts must divide into n_expert_groups")
        if self.hc_mult < 1:
            raise ValueError("hc_mult must be >= 1")
        return self

    @property
    def yarn_active(self) -> bool:
        """Whether YaRN stretches the rotations (DeepSeek-V3: max_seq_len > original_seq_len)."""
        if self.yarn is not None:
            return self.yarn and self.rope_factor > 1.0
        return self.max_seq_len > self.original_seq_len and self.rope_factor > 1.0

    @property
    def yarn_factor(self) -> float:
        """The YaRN factor in effect (1.0 when YaRN is off)."""
        return self.rope_factor if self.yarn_active else 1.0

    @property
    def qk_head_dim(self) -> int:
        """Query/key head size: no-position part plus rotary part."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim


PRESETS: dict[str, dict] = {
    "tiny": {},
    "small": dict(
        dim=512,
        n_layers=7,
        n_dense_layers=1,
        inter_dim=1536,
        n_heads=8,
        q_lora_rank=256,
        kv_lora_rank=128,
        qk_nope_head_dim=64,
        qk_rope_head_dim=32,
        v_head_dim=64,
        n_routed_experts=16,
        n_shared_experts=1,
        n_activated_experts=2,
        n_expert_groups=4,
        n_limited_groups=2,
        moe_inter_dim=384,
        hc_mult=1,
        engram_layer_ids=[1, 4],
        engram_heads_per_ngram=8,
        engram_embed_per_ngram=128,
        engram_table_size=[38_000, 38_000],
        max_seq_len=4096,
    ),
    "base": dict(
        dim=1280,
        n_layers=13,
        n_dense_layers=1,
        inter_dim=3584,
        n_heads=16,
        q_lora_rank=512,
        kv_lora_rank=384,
        qk_nope_head_dim=64,
        qk_rope_head_dim=32,
        v_head_dim=64,
        n_routed_experts=48,
        n_shared_experts=1,
        n_activated_experts=6,
        n_expert_groups=8,
        n_limited_groups=4,
        moe_inter_dim=512,
        hc_mult=1,
        engram_layer_ids=[1, 8],
        engram_heads_per_ngram=8,
        engram_embed_per_ngram=512,
        engram_table_size=[185_000, 185_000],
        max_seq_len=4096,
    ),
    # Pre-release rumours of DeepSeek-V4 (1 T total with Engram): not a released model.
    "hypothetical-v4-1t": dict(
        dim=7168,
        n_layers=61,
        n_dense_layers=3,
        inter_dim=18432,
        n_heads=128,
        q_lora_rank=1536,
        kv_lora_rank=512,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        n_routed_experts=320,
        n_shared_experts=1,
        n_activated_experts=8,
        n_expert_groups=8,
        n_limited_groups=4,
        moe_inter_dim=1920,
        route_scale=2.5,
        hc_mult=4,
        dsa_topk=2048,
        index_n_heads=16,
        index_head_dim=64,
        engram_layer_ids=[1, 15, 30],
        engram_heads_per_ngram=8,
        engram_embed_per_ngram=1024,
        engram_table_size=[39_400_000, 39_400_000],
        max_seq_len=163840,
        rope_factor=40.0,
        original_seq_len=4096,
        mscale=1.0,
    ),
    # deepseek-ai/DeepSeek-V3 (671 B), as its config.json
    "deepseek-v3-671b": dict(
        tokenizer=None,
        vocab_size=129280,
        dim=7168,
        n_layers=61,
        n_dense_layers=3,
        inter_dim=18432,
        norm_eps=1e-6,
        n_heads=128,
        q_lora_rank=1536,
        kv_lora_rank=512,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        n_routed_experts=256,
        n_shared_experts=1,
        n_activated_experts=8,
        n_expert_groups=8,
        n_limited_groups=4,
        route_scale=2.5,
        moe_inter_dim=2048,
        hc_mult=1,
        engram_layer_ids=[],
        max_seq_len=163840,
        rope_factor=40.0,
        original_seq_len=4096,
        mscale=1.0,
    ),
}


def get_preset(name: str, **overrides: object) -> ModelConfig:
    """A named preset (``tiny``, ``small``, ``base``, ``hypothetical-v4-1t``,
    ``deepseek-v3-671b``), with field overrides. The V4 family: :mod:`engram_sdk.model.v4.presets`."""
    if name not in PRESETS:
        from engram_sdk.errors import InputError

        raise InputError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})
