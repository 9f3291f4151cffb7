"""The released DeepSeek-V4 family as :class:`V4Config` presets.

Values are those of the checkpoints' ``config.json`` (deepseek-ai/DeepSeek-V4-Flash,
deepseek-ai/DeepSeek-V4-Pro) and, for V4.1, of transformers' ``DeepseekV41TextConfig``
(main branch), whose defaults are deepseek-ai/DeepSeek-V4.1-Flash's ``text_config``: 40
layers with compress ratios ``[0, 0] + [2] * 18 + [1] * 20``, kv sources [2, 8, 14, 20],
index sources [2, 8, ..., 36], the candidate source 20, Engram on layers [1, 14]. Its three
DSpark draft layers are described (``n_mtp_layers``) but, as in the reference, not built.
"""

from __future__ import annotations

from typing import Any

from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.v41_config import V41Config

from engram_sdk.errors import InputError

_CSA, _HCA, _SWA = (
    "compressed_sparse_attention",
    "heavily_compressed_attention",
    "sliding_attention",
)
_COMMON: dict[str, Any] = dict(
    vocab_size=129280, max_seq_len=1048576, norm_eps=1e-6, head_dim=512, rope_head_dim=64,
    o_lora_rank=1024, window_size=128, compress_ratio_csa=4, compress_ratio_hca=128,
    index_n_heads=64, index_head_dim=128, rope_theta=10000.0, compress_rope_theta=160000.0,
    rope_factor=16.0, original_seq_len=65536, beta_fast=32, beta_slow=1, hc_mult=4,
    hc_sinkhorn_iters=20, hc_eps=1e-6, n_shared_experts=1, n_activated_experts=6,
    score_func="sqrtsoftplus", swiglu_limit=10.0, n_mtp_layers=1,
)  # fmt: skip

V4_PRESETS: dict[str, dict[str, Any]] = {
    "deepseek-v4-flash": dict(
        _COMMON, dim=4096, n_layers=43, n_heads=64, q_lora_rank=1024, o_groups=8,
        attn_types=[_SWA, _SWA] + [_CSA, _HCA] * 20 + [_CSA], index_topk=512,
        mlp_types=["hash_moe"] * 3 + ["moe"] * 40, n_routed_experts=256,
        moe_inter_dim=2048, route_scale=1.5,
    ),
    "deepseek-v4-pro": dict(
        _COMMON, dim=7168, n_layers=61, n_heads=128, q_lora_rank=1536, o_groups=16,
        attn_types=[_HCA, _HCA] + [_CSA, _HCA] * 29 + [_CSA], index_topk=1024,
        mlp_types=["hash_moe"] * 3 + ["moe"] * 58, n_routed_experts=384,
        moe_inter_dim=3072, route_scale=2.5,
    ),
}  # fmt: skip


def get_v4_preset(name: str, **overrides: object) -> V4Config:
    """A released V4-family model's config (see the module docstring), with overrides."""
    if name not in V4_PRESETS:
        raise InputError(f"unknown V4 preset {name!r}; expected one of {sorted(V4_PRESETS)}")
    return V4Config(**{**V4_PRESETS[name], **overrides})


V41_PRESETS: dict[str, dict[str, Any]] = {
    "deepseek-v4.1-flash": dict(
        vocab_size=129280, dim=5120, n_layers=40, norm_eps=1e-20, max_seq_len=1048576,
        n_heads=64, head_dim=512, rope_head_dim=64, q_lora_rank=1280, o_groups=8,
        o_lora_rank=1024, window_size=128, compress_ratios=[0, 0] + [2] * 18 + [1] * 20,
        kv_source_layer_ids=[2, 8, 14, 20],
        index_source_layer_ids=[2, 8, 14, 20, 24, 28, 32, 36], candidate_source_layer_id=20,
        candidate_topk_blocks=2048, candidate_block_size=8, index_n_heads=32,
        index_head_dim=128, index_topk=512, rope_theta=10000.0, compress_rope_theta=160000.0,
        rope_factor=16.0, original_seq_len=65536, beta_fast=32, beta_slow=1, hc_mult=4,
        hc_sinkhorn_iters=20, hc_eps=1e-6, n_routed_experts=384, n_shared_experts=1,
        n_activated_experts=6, moe_inter_dim=2304, score_func="sqrtsoftplus", gate_temp=1.0,
        norm_topk_prob=True, route_scale=1.5, swiglu_limit=10.0,
        engram_layer_ids=[1, 14], engram_vocab_size=16_000_000,
        engram_num_embeddings=[384006168, 384016682], engram_max_ngram_size=4,
        engram_n_heads=8, engram_head_dim=256, engram_pad_id=2,
        engram_compressed_vocab_size=99092, n_mtp_layers=3,
    ),
}  # fmt: skip


def get_v41_preset(name: str, **overrides: object) -> V41Config:
    """A released V4.1 model's config (see the module docstring), with overrides."""
    if name not in V41_PRESETS:
        raise InputError(f"unknown V4.1 preset {name!r}; expected one of {sorted(V41_PRESETS)}")
    return V41Config(**{**V41_PRESETS[name], **overrides})
