"""Against the real thing: a random transformers DeepseekV3ForCausalLM loads into ours and back."""

from pathlib import Path

import pytest
import torch
from engram_sdk.model.hf import export_hf, hf_to_ours, load_hf, ours_to_hf

transformers = pytest.importorskip("transformers")


def hf_model() -> object:
    cfg = transformers.DeepseekV3Config(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=96,
        moe_intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        n_shared_experts=1,
        n_routed_experts=8,
        routed_scaling_factor=2.5,
        kv_lora_rank=32,
        q_lora_rank=48,
        qk_rope_head_dim=8,
        v_head_dim=16,
        qk_nope_head_dim=16,
        n_group=2,
        topk_group=1,
        num_experts_per_tok=2,
        first_k_dense_replace=1,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_interleave=True,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = transformers.DeepseekV3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():  # HF zero-inits some weights; make every one count
            p.normal_(0, 0.05 if p.dim() > 1 else 0.1)
            if "layernorm" in name or name.endswith("norm.weight"):
                p.add_(1.0)
        for layer in model.model.layers[1:]:
            layer.mlp.gate.e_score_correction_bias.normal_(0, 0.05)
    return model


def test_hf_checkpoint_loads_with_identical_logits_and_exports_back(tmp_path: Path) -> None:
    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf", max_shard_size="200KB", safe_serialization=True)
    assert (tmp_path / "hf" / "model.safetensors.index.json").exists()
    ours = load_hf(tmp_path / "hf").eval()
    ids = torch.randint(0, 320, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
        torch.testing.assert_close(ours(ids), want, atol=1e-5, rtol=1e-4)
    export_hf(ours, tmp_path / "back", max_shard_bytes=100_000)
    again = transformers.DeepseekV3ForCausalLM.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, want, atol=1e-5, rtol=1e-4)


def test_name_mapping_round_trips() -> None:
    ours = load_hf_free_model()
    state = ours.state_dict()
    back = hf_to_ours(ours_to_hf(state, ours.config), ours.config)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def load_hf_free_model() -> torch.nn.Module:
    from engram_sdk.model import build_model, get_preset

    return build_model(
        get_preset("tiny", tokenizer=None, vocab_size=100, engram_layer_ids=[], hc_mult=1)
    )


def test_transformers5_rope_parameters_are_read(tmp_path: Path) -> None:
    hf = hf_model()
    hf.config.rope_parameters = {**(hf.config.rope_parameters or {}), "rope_theta": 50000.0}
    hf = transformers.DeepseekV3ForCausalLM(hf.config).eval()  # rebuild with the new theta
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.05)
    hf.save_pretrained(tmp_path / "hf")
    ours = load_hf(tmp_path / "hf").eval()
    assert ours.config.rope_theta == 50000.0
    ids = torch.randint(0, 320, (1, 20))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-4)
