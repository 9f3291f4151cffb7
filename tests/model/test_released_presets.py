"""Presets of the released models against transformers' models built from the checkpoints'
config.json on the meta device: equal total, active-per-token and Engram parameter counts
(V4.1-Flash: equal to transformers-main's DeepseekV41ForCausalLM, see below).

The config dicts below are the released ``config.json`` files (deepseek-ai/DeepSeek-V3,
deepseek-ai/DeepSeek-V4-Flash, deepseek-ai/DeepSeek-V4-Pro), trimmed to the fields that
shape parameters; V4.1-Flash's Engram geometry is transformers-main's DeepseekV41TextConfig.
"""

import pytest
import torch
from engram_sdk.model import get_preset
from engram_sdk.model.info import count_parameters
from engram_sdk.model.v4.info import count_v4_parameters, count_v41_parameters
from engram_sdk.model.v4.presets import get_v4_preset, get_v41_preset

transformers = pytest.importorskip("transformers")

V3_671B = {
    "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
    "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 128,
    "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256,
    "routed_scaling_factor": 2.5, "kv_lora_rank": 512, "q_lora_rank": 1536,
    "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128, "n_group": 8,
    "topk_group": 4, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
    "norm_topk_prob": True, "max_position_embeddings": 163840, "rms_norm_eps": 1e-6,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                     "type": "yarn"},
    "tie_word_embeddings": False,
}  # fmt: skip
V4_COMMON = {
    "vocab_size": 129280, "num_key_value_heads": 1, "head_dim": 512, "qk_rope_head_dim": 64,
    "o_lora_rank": 1024, "sliding_window": 128, "index_n_heads": 64, "index_head_dim": 128,
    "n_shared_experts": 1, "num_experts_per_tok": 6, "num_hash_layers": 3, "hc_mult": 4,
    "hc_sinkhorn_iters": 20, "hc_eps": 1e-6, "rms_norm_eps": 1e-6, "scoring_func": "sqrtsoftplus",
    "swiglu_limit": 10.0, "max_position_embeddings": 1048576, "rope_theta": 10000,
    "compress_rope_theta": 160000, "num_nextn_predict_layers": 1, "tie_word_embeddings": False,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 16,
                     "original_max_position_embeddings": 65536, "type": "yarn"},
}  # fmt: skip
V4_FLASH = {
    **V4_COMMON, "hidden_size": 4096, "num_hidden_layers": 43, "num_attention_heads": 64,
    "q_lora_rank": 1024, "o_groups": 8, "index_topk": 512, "n_routed_experts": 256,
    "moe_intermediate_size": 2048, "routed_scaling_factor": 1.5,
    "compress_ratios": [0, 0] + [4, 128] * 20 + [4, 0],
}  # fmt: skip
V4_PRO = {
    **V4_COMMON, "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128,
    "q_lora_rank": 1536, "o_groups": 16, "index_topk": 1024, "n_routed_experts": 384,
    "moe_intermediate_size": 3072, "routed_scaling_factor": 2.5,
    "compress_ratios": [128, 128] + [4, 128] * 29 + [4, 0],
}  # fmt: skip


def hf_counts(model: torch.nn.Module, cfg: dict, moe_layers: int) -> tuple[int, int]:
    """(total, active per token): every weight but the unchosen routed experts and the
    unread embedding rows, from the HF model's own parameter shapes."""
    total = sum(p.numel() for p in model.parameters())
    per_expert = 3 * cfg["hidden_size"] * cfg["moe_intermediate_size"]
    unchosen = moe_layers * (cfg["n_routed_experts"] - cfg["num_experts_per_tok"]) * per_expert
    return total, total - unchosen - (cfg["vocab_size"] - 1) * cfg["hidden_size"]


def test_deepseek_v3_671b_preset_counts_equal_transformers() -> None:
    with torch.device("meta"):
        hf = transformers.DeepseekV3ForCausalLM(transformers.DeepseekV3Config(**V3_671B))
    total, active = hf_counts(hf, V3_671B, 61 - 3)
    ours = count_parameters(get_preset("deepseek-v3-671b"))
    assert (ours.total, ours.active_per_token, ours.engram_tables) == (total, active, 0)
    assert 670e9 < total < 672e9 and 36e9 < active < 38e9  # "671B total, 37B activated"


@pytest.mark.parametrize(
    ("preset", "hf_cfg", "billions"),
    [("deepseek-v4-flash", V4_FLASH, (284, 13)), ("deepseek-v4-pro", V4_PRO, (1573, 49))],
)
def test_deepseek_v4_presets_counts_equal_transformers(
    preset: str, hf_cfg: dict, billions: tuple[int, int]
) -> None:
    fields = dict(hf_cfg)
    ratios = fields.pop("compress_ratios")[: fields["num_hidden_layers"]]
    with torch.device("meta"):
        hf = transformers.DeepseekV4ForCausalLM(
            transformers.DeepseekV4Config(**fields, compress_ratios=ratios)
        )
    total, active = hf_counts(hf, hf_cfg, hf_cfg["num_hidden_layers"])
    ours = count_v4_parameters(get_v4_preset(preset))
    assert (ours.total, ours.active_per_token, ours.engram_tables) == (total, active, 0)
    assert (round(total / 1e9), round(active / 1e9)) == billions


# transformers-main DeepseekV41ForCausalLM(DeepseekV41TextConfig(engram_layer_ids=[1, 14],
# engram_num_embeddings=[384006168, 384016682])) on the meta device: sum of its parameters
# (backbone + Engram, its FP8 tables' E8M0 ``scale`` included; DSpark draft layers and the
# vision tower are not modules there). tests/model/test_v41_reference.py recomputes it when
# the reference is at hand.
V41_FLASH_REFERENCE_TOTAL = 754_638_867_584


def test_deepseek_v41_flash_preset_counts_equal_the_reference() -> None:
    """V4.1-Flash: its own backbone (kv sources 2/8/14/20, ratios 2 then 1, 8 index sources)
    and Engram: 24 hash columns a layer on layers [1, 14], rows of 256, primes from
    16,000,000 giving the reference's engram_num_embeddings; wkv maps the 24 rows to hc_mult
    keys plus one value; q_weight and k_weight (hc_mult, hidden)."""
    cfg = get_v41_preset("deepseek-v4.1-flash")
    rows = [384006168, 384016682]  # DeepseekV41TextConfig.engram_num_embeddings
    report = count_v41_parameters(cfg)
    assert report.total == V41_FLASH_REFERENCE_TOTAL
    assert report.engram_tables == sum(rows) * 256
    layer = 24 * 256 * 5120 * (4 + 1) + 2 * 4 * 5120
    assert round((report.engram_tables + 2 * layer) / 1e9, 1) == 196.9  # "~196B" of Engram
    experts = 40 * 384 * 3 * 5120 * 2304
    assert report.routed_experts == experts
