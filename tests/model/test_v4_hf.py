"""DeepSeek-V4 against transformers' DeepseekV4ForCausalLM: load, logits, greedy, export."""

from pathlib import Path

import pytest
import torch
from engram_sdk.model.v4 import V4Config, build_v4
from engram_sdk.model.v4.attention import use_dense_reference
from engram_sdk.model.v4.hf import (
    config_to_hf,
    export_hf_v4,
    hf_to_ours,
    load_hf_v4,
    ours_to_hf,
    ours_to_native,
)

transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "DeepseekV4ForCausalLM"):
    pytest.skip("transformers without DeepseekV4 (needs >= 5.24)", allow_module_level=True)

HF_CONFIG = dict(
    vocab_size=256, hidden_size=64, moe_intermediate_size=32, num_hidden_layers=5,
    num_attention_heads=4, head_dim=32, partial_rotary_factor=0.25, q_lora_rank=32,
    o_groups=2, o_lora_rank=16, sliding_window=6, index_n_heads=4, index_head_dim=16,
    index_topk=3, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2,
    hc_mult=3, hc_sinkhorn_iters=20, routed_scaling_factor=1.5, max_position_embeddings=256,
    layer_types=["heavily_compressed_attention", "compressed_sparse_attention",
                 "sliding_attention", "compressed_sparse_attention",
                 "heavily_compressed_attention"],
    mlp_layer_types=["hash_moe", "hash_moe", "moe", "moe", "moe"],
    compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 8},
    rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                     "beta_fast": 32, "beta_slow": 1},
    swiglu_limit=0.6, tie_word_embeddings=False,
)  # fmt: skip


def random_hf(scoring_func: str) -> object:
    cfg = transformers.DeepseekV4Config(**HF_CONFIG, scoring_func=scoring_func)
    torch.manual_seed(0)
    model = transformers.DeepseekV4ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():  # make every weight count
            p.normal_(0, 0.08 if p.dim() > 1 else 0.2)
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.add_(1.0)
        for layer in model.model.layers:
            gate = layer.mlp.gate
            if hasattr(gate, "tid2eid"):  # distinct experts per token
                gate.tid2eid.copy_(torch.rand(256, 8).argsort(-1)[:, :2])
            else:
                gate.e_score_correction_bias.normal_(0, 0.1)
    return model


def greedy(step: object, prompt: torch.Tensor, n: int) -> list[int]:
    ids = prompt
    for _ in range(n):
        ids = torch.cat([ids, step(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[0, prompt.shape[1] :].tolist()


@pytest.mark.parametrize("scoring_func", ["sqrtsoftplus", "sigmoid"])  # 5.24 has no softmax
def test_random_hf_v4_loads_with_equal_logits_greedy_tokens_and_exports_back(
    tmp_path: Path, scoring_func: str
) -> None:
    hf = random_hf(scoring_func)
    hf.save_pretrained(tmp_path / "hf", max_shard_size="300KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").exists()
    ours = load_hf_v4(tmp_path / "hf").eval()
    use_dense_reference(ours)  # 4 index heads tie often; torch.topk breaks ties as HF's does
    assert ours.config.score_func == scoring_func and ours.config.rope_factor == 4.0
    ids = torch.randint(0, 256, (2, 70), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
        torch.testing.assert_close(ours(ids), want, atol=1e-5, rtol=1e-5)
        for short in (1, 3, 7):  # fewer tokens than a compressed window
            torch.testing.assert_close(ours(ids[:, :short]), hf(ids[:, :short]).logits,
                                       atol=1e-5, rtol=1e-5)  # fmt: skip
        prompt = ids[:1, :30]
        assert greedy(ours, prompt, 32) == greedy(lambda x: hf(x).logits, prompt, 32)
    export_hf_v4(ours, tmp_path / "back", max_shard_bytes=200_000)
    again = transformers.DeepseekV4ForCausalLM.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, want, atol=1e-5, rtol=1e-5)


def test_v4_name_mapping_round_trips() -> None:
    model = build_v4(V4Config())
    state = model.state_dict()
    back = hf_to_ours(ours_to_hf(state))
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_v4_native_layout_round_trips_and_matches_transformers_module_names() -> None:
    model = build_v4(V4Config())
    state = model.state_dict()
    native = ours_to_native(state)
    assert "layers.0.ffn.experts.7.w2.weight" in native and "hc_head_fn" in native
    back = hf_to_ours(native, model.config)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    fields = config_to_hf(model.config)
    del fields["architectures"], fields["model_type"]
    hf_names = set(
        transformers.DeepseekV4ForCausalLM(transformers.DeepseekV4Config(**fields)).state_dict()
    )
    assert set(ours_to_hf(state)) == hf_names


def test_a_config_without_a_required_field_is_named_in_the_error(tmp_path: Path) -> None:
    from engram_sdk.model.v4.hf import config_from_hf

    from engram_sdk.errors import InputError

    fields = config_to_hf(V4Config())
    del fields["o_groups"]
    with pytest.raises(InputError, match="o_groups"):
        config_from_hf(fields)
    legacy = {**config_to_hf(V4Config()), "compress_ratios": [8, 4, 0, 4]}
    del legacy["layer_types"]
    assert config_from_hf(legacy).attn_types == V4Config().attn_types


def test_cached_generate_equals_transformers_generate() -> None:
    hf = random_hf("sqrtsoftplus")
    ours = load_state_into_ours(hf)
    prompt = torch.randint(0, 256, (1, 11), generator=torch.Generator().manual_seed(2))
    hf.generation_config.eos_token_id = None  # no stop: ours decodes the 32 tokens too
    with torch.no_grad():
        want = hf.generate(prompt, max_new_tokens=32, do_sample=False)
    assert want.shape[1] == 11 + 32
    assert ours.generate(prompt[0].tolist(), 32) == want[0, 11:].tolist()
    assert greedy(ours, prompt, 32) == want[0, 11:].tolist()  # = recomputing every step


def load_state_into_ours(hf: object) -> object:
    from engram_sdk.model.v4.hf import config_from_hf

    fields = hf.config.to_dict()
    ours = build_v4(config_from_hf(fields), seed=None).eval()
    ours.load_state_dict(hf_to_ours(hf.state_dict(), ours.config))
    use_dense_reference(ours)  # ties in the indexer broken as transformers' torch.topk does
    return ours
