"""DeepSeek-V3 as the references run it: transformers' DeepseekV3 (YaRN, norm_topk_prob) and
the rules of deepseek-ai/DeepSeek-V3's inference code (YaRN switch, softmax routing)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from engram_sdk.model import build_model, get_preset
from engram_sdk.model.hf import export_hf, load_hf
from engram_sdk.model.moe import Gate

transformers = pytest.importorskip("transformers")

BASE = dict(
    vocab_size=320, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
    num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, n_shared_experts=1,
    n_routed_experts=8, routed_scaling_factor=2.5, kv_lora_rank=32, q_lora_rank=48,
    qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16, n_group=2, topk_group=1,
    num_experts_per_tok=2, first_k_dense_replace=1, max_position_embeddings=128,
    rms_norm_eps=1e-6, rope_interleave=True, tie_word_embeddings=False,
)  # fmt: skip
YARN_UNEQUAL = {
    "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
    "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 1.3,
}  # fmt: skip
YARN_BARE = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}


def random_hf(**overrides: object) -> object:
    cfg = transformers.DeepseekV3Config(**{**BASE, **overrides})
    torch.manual_seed(0)
    model = transformers.DeepseekV3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 0.05 if p.dim() > 1 else 0.1)
            if "layernorm" in name or name.endswith("norm.weight"):
                p.add_(1.0)
        for layer in model.model.layers[1:]:
            layer.mlp.gate.e_score_correction_bias.normal_(0, 0.05)
    return model


def greedy(step: object, ids: torch.Tensor, n: int) -> list[int]:
    out = ids
    for _ in range(n):
        out = torch.cat([out, step(out)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out[0, ids.shape[1] :].tolist()


@pytest.mark.parametrize(
    "overrides",
    [
        {"rope_parameters": {**YARN_UNEQUAL, "rope_theta": 10000.0}, "norm_topk_prob": False},
        {"rope_parameters": {**YARN_BARE, "rope_theta": 10000.0}},
    ],
    ids=["yarn-unequal-mscales-no-topk-norm", "yarn-without-mscales"],
)
def test_hf_v3_round_trip_with_yarn_and_routing_options(tmp_path: Path, overrides: dict) -> None:
    hf = random_hf(**overrides)
    hf.save_pretrained(tmp_path / "hf", max_shard_size="200KB")
    ours = load_hf(tmp_path / "hf").eval()
    assert ours.config.yarn_active and ours.config.norm_topk_prob == hf.config.norm_topk_prob
    ids = torch.randint(0, 320, (2, 80), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
        torch.testing.assert_close(ours(ids), want, atol=1e-5, rtol=1e-4)
        prompt = ids[:1, :40]
        assert greedy(ours, prompt, 32) == greedy(lambda x: hf(x).logits, prompt, 32)
    export_hf(ours, tmp_path / "back", max_shard_bytes=100_000)
    again = transformers.DeepseekV3ForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert again.config.rope_parameters["rope_type"] == "yarn"
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, want, atol=1e-5, rtol=1e-4)


def reference_freqs(
    dim: int, seqlen: int, base: float, factor: float, original: int
) -> torch.Tensor:
    """precompute_freqs_cis of deepseek-ai/DeepSeek-V3 inference/model.py, in float64."""
    freqs = 1.0 / (base ** (np.arange(0, dim, 2) / dim))
    if seqlen > original:  # the reference's switch

        def corr(rot: float) -> float:
            return dim * math.log(original / (rot * 2 * math.pi)) / (2 * math.log(base))

        low, high = max(math.floor(corr(32)), 0), min(math.ceil(corr(1)), dim - 1)
        high = high + 0.001 if low == high else high
        smooth = 1 - np.clip((np.arange(dim // 2) - low) / (high - low), 0, 1)
        freqs = freqs / factor * (1 - smooth) + freqs * smooth
    angles = np.outer(np.arange(seqlen), freqs)
    return torch.from_numpy(np.cos(angles) + 1j * np.sin(angles))


@pytest.mark.parametrize(("max_seq_len", "original"), [(64, 128), (128, 128), (256, 64)])
def test_yarn_switches_on_max_seq_len_beyond_the_original_as_the_reference(
    max_seq_len: int, original: int
) -> None:
    cfg = get_preset(
        "tiny", tokenizer=None, vocab_size=50, engram_layer_ids=[], hc_mult=1,
        rope_factor=8.0, max_seq_len=max_seq_len, original_seq_len=original, mscale=0.5,
    )  # fmt: skip
    model = build_model(cfg)
    want = reference_freqs(cfg.qk_rope_head_dim, max_seq_len, cfg.rope_theta, 8.0, original)
    torch.testing.assert_close(model.freqs.to(torch.complex128), want, atol=1e-6, rtol=0)
    scale = model.blocks[0].attn.scale * math.sqrt(cfg.qk_head_dim)
    m = 0.1 * 0.5 * math.log(8.0) + 1.0
    assert scale == pytest.approx(m * m if max_seq_len > original else 1.0)


def reference_gate(x: np.ndarray, w: np.ndarray, n_groups: int, topk_groups: int, k: int,
                   scale: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """DeepSeek-V3's Gate with score_func='softmax' and no bias (the V2-style rule)."""
    logits = x @ w.T
    scores = np.exp(logits - logits.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    grouped = scores.reshape(len(x), n_groups, -1)
    best_groups = np.argsort(-grouped.max(-1), axis=-1, kind="stable")[:, :topk_groups]
    masked = np.full_like(grouped, -np.inf)
    for row, groups in enumerate(best_groups):
        masked[row, groups] = grouped[row, groups]
    ids = np.argsort(-masked.reshape(len(x), -1), axis=-1, kind="stable")[:, :k]
    return np.take_along_axis(scores, ids, 1) * scale, ids  # softmax weights are not renormalised


def test_softmax_routing_without_bias_equals_the_reference_gate() -> None:
    cfg = get_preset(
        "tiny", tokenizer=None, vocab_size=50, n_routed_experts=16, n_expert_groups=4,
        n_limited_groups=2, n_activated_experts=3, score_func="softmax", gate_bias=False,
        norm_topk_prob=False, route_scale=1.7,
    )  # fmt: skip
    torch.manual_seed(0)
    gate = Gate(cfg).double()
    x = torch.randn(200, cfg.dim, dtype=torch.float64)
    weights, ids, _ = gate(x)
    want_w, want_ids = reference_gate(x.numpy(), gate.weight.detach().numpy(), 4, 2, 3, 1.7)
    got_ids = ids.numpy()
    order, want_order = np.argsort(got_ids, 1), np.argsort(want_ids, 1)
    np.testing.assert_array_equal(np.take_along_axis(got_ids, order, 1),
                                  np.take_along_axis(want_ids, want_order, 1))  # fmt: skip
    np.testing.assert_allclose(
        np.take_along_axis(weights.detach().numpy(), order, 1),
        np.take_along_axis(want_w, want_order, 1),
        rtol=1e-5,
    )  # fmt: skip  (the gate scores in fp32)
    sigmoid = Gate(cfg.model_copy(update={"score_func": "sigmoid", "gate_bias": True})).double()
    sigmoid.load_state_dict(gate.state_dict())
    assert (sigmoid(x)[1].sort(1).values != ids.sort(1).values).any(1).float().mean() > 0.05


def test_fp8_block_quantised_v3_checkpoint_loads_dequantised(tmp_path: Path) -> None:
    """DeepSeek-V3 ships FP8 E4M3 linears with a ``weight_scale_inv`` grid per block."""
    from safetensors.torch import save_file

    hf = random_hf()
    state, block = {}, 16
    for name, w in hf.state_dict().items():
        if (
            name.endswith("proj.weight")
            and w.dim() == 2
            and not w.shape[0] % block
            and not w.shape[1] % block
        ):
            grid = w.unflatten(0, (-1, block)).unflatten(-1, (-1, block))  # (R, b, C, b)
            scale = grid.abs().amax(dim=(1, 3)) / 448.0
            q = (grid / scale[:, None, :, None]).flatten(2, 3).flatten(0, 1).to(torch.float8_e4m3fn)
            state[name], state[name + "_scale_inv"] = q, scale
            dequantised = (q.float().unflatten(0, (-1, block)).unflatten(-1, (-1, block))
                           * scale[:, None, :, None]).flatten(2, 3).flatten(0, 1)  # fmt: skip
            w.copy_(dequantised)  # the HF model now holds exactly the dequantised weights
        else:
            state[name] = w.contiguous()
    assert sum(t.dtype == torch.float8_e4m3fn for t in state.values()) > 10
    hf.config.save_pretrained(tmp_path)
    save_file(state, str(tmp_path / "model.safetensors"))
    ours = load_hf(tmp_path).eval()
    ids = torch.randint(0, 320, (2, 30), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-4)
