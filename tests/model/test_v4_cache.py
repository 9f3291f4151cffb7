"""DeepSeek-V4's decoding cache: feeding a sequence in chunks (single tokens, chunks that
split compressed windows, CSA's overlapping windows, HCA's) gives the logits of the whole
sequence, Engram's look-back continuing across chunks and stopping at DEAD positions.
(Against transformers' own cached ``generate``: tests/model/test_v4_hf.py.)"""

import itertools

import pytest
import torch
from engram_sdk.model.v4 import V4Config, build_v4
from engram_sdk.model.v4.cache import V4Cache

TINY = dict(
    vocab_size=200,
    index_n_heads=16,
    engram_layer_ids=[1, 3],
    engram_vocab_size=1000,
    engram_n_heads=2,
    engram_head_dim=32,
    engram_max_ngram_size=3,
    hc_mult=3,
)  # fmt: skip  (16 indexer heads: relu rarely zeroes all, so top-k scores seldom tie exactly)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    m = build_v4(V4Config(**TINY), seed=2).eval()
    with torch.no_grad():
        for p in m.parameters():  # Engram gates, sinks and biases away from their init
            p.add_(torch.randn_like(p) * 0.05)
    return m


@pytest.mark.parametrize("cuts", [(1, 2, 3), (5, 13), (16,)])
def test_cached_chunks_equal_the_whole_sequence(model: torch.nn.Module, cuts: tuple) -> None:
    ids = torch.randint(0, 200, (2, 35), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[0, 6] = mask[1, 14:17] = False
    with torch.no_grad():
        whole = model(ids, mask)
        cache, parts = V4Cache(), []
        for a, b in itertools.pairwise([0, *cuts, *range(max(cuts) + 1, 36)]):
            parts.append(model(ids[:, a:b], mask[:, a:b], cache=cache))
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=2e-5, rtol=1e-5)
    csa = cache.layer(1)  # compressed_sparse_attention, ratio 4: 8 entries, 3 tokens pending
    assert csa.compressor.count == 8 and csa.compressor.pending_kv.shape[1] == 3
    assert csa.indexer.count == 8 and csa.window_kv.shape[1] == model.config.window_size - 1


def test_cached_generate_equals_greedy_recompute(model: torch.nn.Module) -> None:
    prompt = torch.randint(0, 200, (1, 6), generator=torch.Generator().manual_seed(4))
    ids = prompt
    with torch.no_grad():
        for _ in range(20):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert model.generate(prompt[0].tolist(), 20) == ids[0, 6:].tolist()
