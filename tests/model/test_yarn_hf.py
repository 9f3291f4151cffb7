"""YaRN-scaled MLA against transformers' DeepseekV3ForCausalLM past the original context."""

from pathlib import Path

import pytest
import torch
from engram_sdk.model import build_model
from engram_sdk.model.hf import _read_hf_weights, config_from_hf, hf_to_ours

transformers = pytest.importorskip("transformers")

YARN = {
    "rope_type": "yarn",
    "factor": 4.0,
    "original_max_position_embeddings": 32,
    "beta_fast": 32,
    "beta_slow": 1,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
}


def test_yarn_logits_equal_hf_beyond_the_original_context(tmp_path: Path) -> None:
    cfg = transformers.DeepseekV3Config(
        vocab_size=320, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, n_shared_experts=1,
        n_routed_experts=8, routed_scaling_factor=2.5, kv_lora_rank=32, q_lora_rank=48,
        qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16, n_group=2, topk_group=1,
        num_experts_per_tok=2, first_k_dense_replace=1, max_position_embeddings=128,
        rms_norm_eps=1e-6, rope_interleave=True, tie_word_embeddings=False, rope_scaling=YARN,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.DeepseekV3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.normal_(0, 0.05 if p.dim() > 1 else 0.1)
            if "layernorm" in name or name.endswith("norm.weight"):
                p.add_(1.0)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    # our config is built from the YaRN settings directly (config.json parsing is hf.py's job)
    ours_cfg = config_from_hf({**cfg.to_dict(), "rope_scaling": YARN, "rope_theta": 10000.0})
    assert ours_cfg.rope_factor == 4.0 and ours_cfg.original_seq_len == 32
    ours = build_model(ours_cfg).eval()
    ours.load_state_dict(hf_to_ours(_read_hf_weights(tmp_path), ours_cfg))
    ids = torch.randint(0, 320, (2, 100), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = hf(ids).logits
        torch.testing.assert_close(ours(ids), want, atol=1e-5, rtol=1e-4)
        plain = build_model(ours_cfg.model_copy(update={"rope_factor": 1.0})).eval()
        plain.load_state_dict(ours.state_dict())
        assert not torch.allclose(plain(ids), want, atol=1e-3)  # the scaling is really exercised
