"""The model: each switchable part checked against an independent computation."""

import math

import numpy as np
import pytest
import torch
from engram_sdk.model import ModelCache, build_model, get_preset
from engram_sdk.model.hyper import HyperConnection, sinkhorn
from engram_sdk.model.moe import MoE

from engram_sdk.errors import InputError

VARIANTS = {
    "default": {},
    "no-engram": {"engram_layer_ids": []},
    "dsa": {"dsa_topk": 5},
    "plain-residual": {"hc_mult": 1},
    "hc4": {"hc_mult": 4},
    "all-dense": {"n_dense_layers": 4},
    "yarn": {"rope_factor": 4.0, "original_seq_len": 8},
    "no-q-lora": {"q_lora_rank": 0},
}


def tiny(**overrides: object):
    return get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64, **overrides)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cached_decoding_equals_full_recompute(variant: str) -> None:
    model = build_model(tiny(**VARIANTS[variant])).eval()
    ids = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)
        cache = ModelCache()
        parts = [model(ids[:, :7], cache), model(ids[:, 7:9], cache)]
        parts += [model(ids[:, i : i + 1], cache) for i in range(9, 20)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=2e-5, rtol=1e-4)


def test_sparse_attention_with_k_at_least_seq_len_equals_dense() -> None:
    dense = build_model(tiny(), seed=3).eval()
    sparse = build_model(tiny(dsa_topk=64), seed=3).eval()
    missing = sparse.load_state_dict(dense.state_dict(), strict=False)
    assert all(".indexer." in k for k in missing.missing_keys) and not missing.unexpected_keys
    ids = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(sparse(ids), dense(ids))
        narrow = build_model(tiny(dsa_topk=2), seed=3).eval()
        narrow.load_state_dict(sparse.state_dict())
        assert not torch.allclose(narrow(ids), dense(ids))  # top-2 really drops keys


def test_moe_matches_a_float64_per_token_reference() -> None:
    cfg = tiny(n_expert_groups=2, n_limited_groups=1, route_scale=1.5)
    torch.manual_seed(0)
    moe = MoE(cfg).double().eval()
    moe.gate.bias.copy_(torch.randn(cfg.n_routed_experts, dtype=torch.float64) * 0.1)
    x = torch.randn(3, 5, cfg.dim, dtype=torch.float64)
    with torch.no_grad():
        got = moe(x)
    want = torch.zeros_like(x)
    for b in range(3):
        for t in range(5):
            tok = x[b, t]
            s = torch.sigmoid(moe.gate.weight.double() @ tok)
            biased = (s + moe.gate.bias).view(cfg.n_expert_groups, -1)
            group = biased.topk(2, dim=-1).values.sum(-1)
            best = int(group.argmax())
            allowed = torch.full_like(biased, -math.inf)
            allowed[best] = biased[best]
            chosen = allowed.flatten().topk(cfg.n_activated_experts).indices
            w = s[chosen] / s[chosen].sum() * cfg.route_scale
            out = sum(w[i] * moe.expert(int(e), tok[None])[0] for i, e in enumerate(chosen))
            want[b, t] = out + moe.shared(tok)
    torch.testing.assert_close(got, want)


def test_bias_update_moves_toward_balance() -> None:
    moe = MoE(tiny())
    moe.load.copy_(torch.tensor([10.0, 0, 0, 0, 0, 0, 0, 6]))
    moe.update_bias()
    assert moe.gate.bias[0] < 0 < moe.gate.bias[1] and float(moe.load.sum()) == 0


def test_sinkhorn_is_doubly_stochastic_and_hc1_is_plain_residual() -> None:
    m = sinkhorn(torch.randn(4, 4) * 3, 30)
    torch.testing.assert_close(m.sum(0), torch.ones(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(m.sum(1), torch.ones(4), atol=1e-4, rtol=0)
    hc = HyperConnection(1, 10)
    streams, out = torch.randn(2, 3, 1, 8), torch.randn(2, 3, 8)
    assert torch.equal(hc.read(streams), streams[:, :, 0])
    assert torch.equal(hc.write(streams, out), streams + out.unsqueeze(2))


def test_engram_layer_matches_float64_formula_and_hasher_addresses() -> None:
    model = build_model(tiny()).double().eval()
    ids = torch.randint(0, 300, (2, 9))
    addr = model.engram_addresses(ids)
    for layer in model.config.engram_layer_ids:
        expected = model.hasher.hash(ids.numpy(), layer, flat=True)
        assert np.array_equal(addr[layer].numpy(), expected)
    engram = model.blocks[1].engram
    hidden = torch.randn(2, 9, model.config.hc_mult, model.config.dim, dtype=torch.float64)
    mem = engram.table.embedding.weight[addr[1]].flatten(-2)
    eps = torch.finfo(torch.float64).eps  # deepseek-ai/Engram: the dtype's eps in these norms
    for i in range(model.config.hc_mult):
        k = engram.key_projs[i](mem)
        k = k / torch.sqrt((k * k).mean(-1, keepdim=True) + eps) * engram.key_norms[i].weight
        q = hidden[:, :, i]
        q = q / torch.sqrt((q * q).mean(-1, keepdim=True) + eps) * engram.query_norms[i].weight
        dot = (k * q).sum(-1) / math.sqrt(model.config.dim)
        want = torch.sigmoid(torch.sign(dot) * torch.sqrt(dot.abs()))
        torch.testing.assert_close(engram.gate(hidden, mem)[:, :, i, 0], want)


def test_generation_modes() -> None:
    model = build_model(tiny())
    prompt = [5, 6, 7, 8]
    greedy = model.generate(prompt, 6)
    assert greedy == model.generate(prompt, 6) == list(model.stream(prompt, 6))
    stop = [greedy[2:4]]
    assert model.generate(prompt, 6, stop=stop) == greedy[:2]
    a = model.generate(prompt, 8, temperature=1.0, top_p=0.9, seed=7)
    assert a == model.generate(prompt, 8, temperature=1.0, top_p=0.9, seed=7)
    with pytest.raises(InputError):
        model.generate([], 3)
    with pytest.raises(InputError, match="max_seq_len"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_presets_parameter_budget() -> None:
    from engram_sdk.model.info import count_parameters

    v4 = count_parameters(get_preset("hypothetical-v4-1t"))
    assert 0.9e12 < v4.total < 1.1e12 and 32e9 <= v4.active_per_token <= 37e9
    assert 0.20 <= v4.engram_share_of_sparse <= 0.25
    small, base = count_parameters(get_preset("small")), count_parameters(get_preset("base"))
    assert 100e6 <= small.total <= 200e6 and 1e9 <= base.total <= 2e9
