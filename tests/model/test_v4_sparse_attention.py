"""DeepSeek-V4's O(T·k) attention path against its dense reference (float64): every attention
type, one-shot prefill, chunked prefill and decoding with the cache, indexer ties, gradients."""

import itertools

import pytest
import torch
from engram_sdk.model.sparse import EMPTY, sparse_attention
from engram_sdk.model.v4 import V4Config, build_v4
from engram_sdk.model.v4 import sparse_attention as v4_sparse
from engram_sdk.model.v4.attention import V4Attention, use_dense_reference
from engram_sdk.model.v4.cache import V4Cache, V4LayerCache
from engram_sdk.model.v4.rope import v4_frequencies

from engram_sdk.errors import InputError

# window 16, CSA every 4 tokens with top-8, HCA every 32: 150 tokens give 37 CSA entries (more
# than top-k) and 4 HCA entries; 16 index heads: relu seldom zeroes all, scores seldom tie
LAYER = dict(
    window_size=16, compress_ratio_csa=4, compress_ratio_hca=32, index_topk=8,
    index_n_heads=16, max_seq_len=512, n_layers=3, mlp_types=["moe"] * 3,
    attn_types=["sliding_attention", "compressed_sparse_attention",
                "heavily_compressed_attention"],
)  # fmt: skip
TYPES = LAYER["attn_types"]


def layer(kind: str, cfg: V4Config | None = None) -> tuple[V4Attention, torch.Tensor]:
    cfg = cfg or V4Config(**LAYER)
    torch.manual_seed(TYPES.index(kind))
    attn = V4Attention(cfg, TYPES.index(kind)).double()
    with torch.no_grad():
        attn.attn_sink.normal_()
        for p in attn.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return attn, v4_frequencies(cfg, kind != "sliding_attention").to(torch.complex128)


def run(
    attn: V4Attention, x: torch.Tensor, freqs: torch.Tensor, dense: bool, cuts=()
) -> torch.Tensor:
    attn.dense_reference = dense
    if not cuts:
        return attn(x, freqs)
    cache, parts = V4LayerCache(), []
    for a, b in itertools.pairwise([0, *cuts, x.shape[1]]):
        parts.append(attn(x[:, a:b], freqs, torch.arange(a, b), cache))
    return torch.cat(parts, dim=1)


@pytest.mark.parametrize("kind", TYPES)
def test_one_shot_prefill_equals_the_dense_reference(kind: str) -> None:
    attn, freqs = layer(kind)
    x = torch.randn(2, 150, attn.cfg.dim, dtype=torch.float64)
    with torch.no_grad():
        want = run(attn, x, freqs, dense=True)
        got = run(attn, x, freqs, dense=False)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("kind", TYPES)
def test_chunked_prefill_and_decoding_equal_the_dense_reference(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(v4_sparse, "QUERY_CHUNK", 24)  # several query chunks per call
    monkeypatch.setattr(v4_sparse, "GATHER_ELEMENTS", 2**14)  # several attention steps
    attn, freqs = layer(kind)
    x = torch.randn(2, 150, attn.cfg.dim, dtype=torch.float64)
    cuts = (1, 2, 3, 37, 66, 101, *range(130, 150))  # chunks split windows; then decoding
    with torch.no_grad():
        want = run(attn, x, freqs, dense=True)
        got = run(attn, x, freqs, dense=False, cuts=cuts)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


def test_whole_model_prefill_and_cached_decoding_equal_the_dense_reference() -> None:
    cfg = V4Config(vocab_size=200, index_n_heads=16)  # HCA, CSA, sliding, CSA
    model = build_v4(cfg, seed=2).eval().double()
    ids = torch.randint(0, 200, (2, 70), generator=torch.Generator().manual_seed(3))
    outs = {}
    with torch.no_grad():
        for dense in (True, False):
            use_dense_reference(model, dense)
            cache, parts = V4Cache(), []
            for a, b in itertools.pairwise([0, 9, 40, *range(41, 71)]):
                parts.append(model(ids[:, a:b], cache=cache))
            outs[dense] = model(ids), torch.cat(parts, dim=1)
    for want, got in zip(outs[True], outs[False], strict=True):  # one shot, then cached
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


def test_indexer_ties_go_to_the_earliest_entries() -> None:
    attn, freqs = layer("compressed_sparse_attention")
    with torch.no_grad():
        attn.indexer.weights_proj.weight.zero_()  # every score 0: all entries tie
        x = torch.randn(1, 150, attn.cfg.dim, dtype=torch.float64)
        got = run(attn, x, freqs, dense=False)
        # oracle: the dense reference with the indexer's choice replaced by the first k
        first_k = attn.compressor.visible(torch.arange(150), 37).cumsum(-1) <= 8
        attn.indexer.forward = lambda *a: (
            first_k & attn.compressor.visible(torch.arange(150), 37)
        )[None]
        want = run(attn, x, freqs, dense=True)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("kind", TYPES)
def test_gradients_equal_the_dense_reference(kind: str) -> None:
    attn, freqs = layer(kind)
    x = torch.randn(2, 70, attn.cfg.dim, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 70, attn.cfg.dim, dtype=torch.float64)
    grads = []
    for dense in (True, False):
        attn.zero_grad()
        x.grad = None
        (run(attn, x, freqs, dense) * weight).sum().backward()
        grads.append([x.grad.clone()] + [
            torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in attn.parameters()
        ])  # fmt: skip
    assert grads[1][0].abs().sum() > 0
    for want, got in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-11, rtol=1e-9)


def test_positions_with_gaps_are_refused() -> None:
    attn, freqs = layer("sliding_attention")
    x = torch.randn(1, 3, attn.cfg.dim, dtype=torch.float64)
    with pytest.raises(InputError, match="consecutive positions"):
        attn(x, freqs, torch.tensor([0, 1, 3]))


def test_sink_joins_the_softmax_of_gathered_keys() -> None:
    g = torch.Generator().manual_seed(0)
    q, keys = torch.randn(1, 5, 3, 4, generator=g), torch.randn(1, 9, 4, generator=g)
    idx = torch.tensor([[[0, 1, EMPTY], [2, 3, 4], [8, EMPTY, EMPTY], [5, 6, 7], [0, 8, 4]]])
    sink = torch.randn(3, generator=g)
    got = sparse_attention(q, keys, keys, idx, 0.5, sink=sink)
    for t, h in itertools.product(range(5), range(3)):  # oracle: one row at a time
        chosen = keys[0, [i for i in idx[0, t].tolist() if i != EMPTY]]
        logits = torch.cat([chosen @ q[0, t, h] * 0.5, sink[h : h + 1]])
        want = logits.softmax(0)[:-1] @ chosen
        torch.testing.assert_close(got[0, t, h], want, atol=1e-6, rtol=1e-5)
    with pytest.raises(InputError, match="no sink"):
        sparse_attention(q, keys, keys, idx, 0.5, sink=sink, backend="triton")
