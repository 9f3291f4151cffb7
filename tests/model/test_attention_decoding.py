"""MLA decoding: absorbed attention on the latent equals re-expanded attention; the cache."""

import torch
from engram_sdk.model import get_preset
from engram_sdk.model.attention import MLA
from engram_sdk.model.latent_cache import LatentCache
from engram_sdk.model.rope import rope_frequencies


def _mla(**overrides: object) -> tuple[MLA, torch.Tensor]:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=50, max_seq_len=64, **overrides)
    torch.manual_seed(0)
    mla = MLA(cfg).double().eval()
    freqs = rope_frequencies(cfg.qk_rope_head_dim, 64, cfg.rope_theta).to(torch.complex128)
    return mla, freqs


def test_absorbed_equals_expanded_attention_with_per_row_lengths() -> None:
    mla, freqs = _mla()
    x = torch.randn(3, 12, mla.cfg.dim, dtype=torch.float64)
    _, cache = mla(x[:, :9], freqs)
    cache.lengths = torch.tensor([9, 4, 6])  # rows hold different lengths
    pos = cache.positions(2)
    _, q_nope, q_rope, keys = mla.project(x[:, 9:11], freqs[pos])
    cache.append(keys, None, pos)
    keys_all, _ = cache.views()
    absorbed = mla.attend_absorbed(q_nope, q_rope, keys_all, pos)
    expanded = mla.attend_expanded(q_nope, q_rope, keys_all, pos)
    torch.testing.assert_close(absorbed, expanded)
    kv_all, kr_all = keys_all.split([32, 8], dim=-1)
    # row 1's second query sees exactly its positions 0..5: an independent per-row softmax
    n = 6
    h, nope = mla.cfg.n_heads, mla.cfg.qk_nope_head_dim
    k_nope, v = mla.wkv_b(kv_all[1, :n]).view(n, h, -1).split([nope, mla.cfg.v_head_dim], -1)
    q1 = torch.cat([q_nope[1, 1], q_rope[1, 1]], -1)  # (H, d)
    k1 = torch.cat([k_nope, kr_all[1, :n, None].expand(n, h, -1)], -1)
    p = (torch.einsum("hd,nhd->hn", q1, k1) * mla.scale).softmax(-1)
    torch.testing.assert_close(absorbed[1, 1], torch.einsum("hn,nhd->hd", p, v))


def test_decoding_step_never_re_expands_the_cache() -> None:
    mla, freqs = _mla()
    calls = []
    mla.wkv_b.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape))
    x = torch.randn(2, 10, mla.cfg.dim, dtype=torch.float64)
    with torch.no_grad():
        _, cache = mla(x[:, :8], freqs)
        calls.clear()
        mla(x[:, 8:9], freqs, cache)
        mla(x[:, 9:10], freqs, cache)
    assert calls == []  # wkv_b is folded into queries and outputs, never run over the cache


def test_cache_grows_geometrically_and_keeps_its_contents() -> None:
    keys, index_keys = torch.randn(2, 3, 6), torch.randn(2, 3, 5)
    cache = LatentCache.holding(keys, 4, index_keys)
    capacities = []
    for i in range(40):
        cache.append(torch.full((2, 1, 6), float(i)), torch.full((2, 1, 5), -i), cache.positions(1))
        capacities.append(cache.capacity)
    assert len(set(capacities)) <= 4  # 16, 32, 64: a copy per doubling, not per token
    assert cache.max_length == 43 and cache.lengths.tolist() == [43, 43]
    keys_all, index_all = cache.views()
    torch.testing.assert_close(keys_all[:, :3], keys)
    torch.testing.assert_close(index_all[:, :3], index_keys)
    assert cache.kv_latent[:, 3:43, 0].tolist() == [list(map(float, range(40)))] * 2
    assert cache.k_rope[:, 3:43, 1].tolist() == [list(map(float, range(40)))] * 2
    assert index_all[:, 3:, 4].tolist() == [[-float(i) for i in range(40)]] * 2


def test_rope_table_survives_dtype_casts() -> None:
    """``model.to(torch.bfloat16)`` (as GPU benchmarks do) keeps the complex RoPE table: a
    plain ``nn.Module`` cast turns it real and drops the sines (torch warns "Casting complex
    values to real"); the cast must not even reach the table, so no warning either."""
    import warnings

    from engram_sdk.model import build_model, get_preset

    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, engram_layer_ids=[], hc_mult=1)
    model = build_model(cfg, seed=0)
    table = model.freqs.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cast in (lambda m: m.to(torch.bfloat16), lambda m: m.half(), lambda m: m.float()):
            cast(model)
            assert model.freqs.dtype == torch.complex64
            assert torch.equal(model.freqs, table)


def test_rope_table_of_a_meta_model_is_rebuilt_by_to_empty() -> None:
    """A model built on the meta device, then ``to_empty``: the RoPE table cannot be copied
    out of meta, so it is computed afresh on the target device, equal to a normal build's."""
    from engram_sdk.model import build_model, get_preset
    from engram_sdk.model.transformer import Transformer

    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, engram_layer_ids=[], hc_mult=1)
    want = build_model(cfg, seed=0).freqs
    with torch.device("meta"):
        model = Transformer(cfg)
    model.to_empty(device="cpu")
    assert model.freqs.dtype == torch.complex64
    assert torch.equal(model.freqs, want)
