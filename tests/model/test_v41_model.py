"""DeepSeek-V4.1 on its own (no reference needed): cached decoding equals recomputing the
whole sequence (Engram with DEAD positions, groups of ratio 2 and 1, chunks that split
groups; greedy tokens with the rounding on), the FP8 / FP4 rounding against a brute-force nearest-value oracle, and config
checks."""

import itertools

import pytest
import torch
from engram_sdk.model.v4.fake_quant import E2M1_GRID, fp4_round, fp8_round
from engram_sdk.model.v4.v41_attention import V41Cache
from engram_sdk.model.v4.v41_config import V41Config
from engram_sdk.model.v4.v41_model import build_v41
from pydantic import ValidationError

TINY = dict(
    vocab_size=200, compress_ratios=[0, 0, 2, 2, 1, 1], kv_source_layer_ids=[2, 4],
    index_source_layer_ids=[2, 4, 5], candidate_source_layer_id=4, candidate_block_size=2,
    candidate_topk_blocks=3, hc_mult=3, engram_layer_ids=[1, 4], engram_vocab_size=101,
    engram_n_heads=2, engram_head_dim=32, engram_max_ngram_size=3, index_n_heads=16,
    head_dim=24, index_head_dim=24,
)  # fmt: skip
# 16 indexer heads: relu rarely zeroes them all, so scores seldom tie exactly; head sizes of
# 24 (not whole FP8/FP4 blocks) leave the KV unrounded, so rounding-order noise between a
# chunk and the whole sequence cannot flip a value to the next grid point.


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    m = build_v41(V41Config(**TINY), seed=4).eval()
    with torch.no_grad():
        for p in m.parameters():  # the Engram gates and sinks away from their zero init
            p.add_(torch.randn_like(p) * 0.05)
    return m


@pytest.mark.parametrize("cuts", [(1, 2, 3, 4, 5, 6), (7,), (5, 12)])
def test_cached_chunks_equal_the_whole_sequence_with_dead_positions(
    model: torch.nn.Module, cuts: tuple[int, ...]
) -> None:
    ids = torch.randint(0, 200, (2, 21), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[0, 4] = mask[1, 9:12] = False  # DEAD: the look-back of the n-grams stops there
    with torch.no_grad():
        whole = model(ids, mask)
        cache, parts = V41Cache(), []
        bounds = [0, *cuts, *range(max(cuts) + 1, 22)]
        for a, b in itertools.pairwise(bounds):
            parts.append(model(ids[:, a:b], mask[:, a:b], cache=cache))
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=2e-5, rtol=1e-5)
    assert cache.length == 21 and cache.sources[2].pending_kv.shape[1] == 1  # 21 = 2·10 + 1


def test_cached_generate_equals_greedy_recompute() -> None:
    model = build_v41(V41Config(**{**TINY, "head_dim": 32, "index_head_dim": 32}), seed=4).eval()
    prompt = torch.randint(0, 200, (1, 9), generator=torch.Generator().manual_seed(5))
    ids = prompt
    with torch.no_grad():
        for _ in range(12):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert model.generate(prompt[0].tolist(), 12) == ids[0, 9:].tolist()


def _nearest_e2m1(v: float) -> float:
    """Brute force: the grid value nearest |v| (ties to the even code), signed like v."""
    best = min(range(8), key=lambda c: (abs(abs(v) - E2M1_GRID[c]), c % 2))
    return -E2M1_GRID[best] if v < 0 else E2M1_GRID[best]


def test_fp4_rounding_equals_the_nearest_grid_value_with_ties_to_even() -> None:
    ties = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]
    values = torch.tensor(ties + [-t for t in ties] + [6.0] * 18)  # amax 6: scale 1
    assert fp4_round(values, 32).tolist() == [_nearest_e2m1(v) for v in values.tolist()]
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0)) * 3
    got = fp4_round(x, 32)
    for row, out in zip(x.view(-1, 32).tolist(), got.view(-1, 32).tolist(), strict=True):
        scale = 2.0 ** torch.tensor(max(map(abs, row)) / 6).log2().ceil().item()
        assert out == [_nearest_e2m1(v / scale) * scale for v in row]


def test_fp8_rounding_uses_power_of_two_scales_per_block() -> None:
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(1)) * 1e-3
    got = fp8_round(x, 32)
    blocks = x.view(3, 2, 32).double()
    scale = torch.exp2(torch.ceil(torch.log2(blocks.abs().amax(-1, keepdim=True) / 448)))
    want = (blocks / scale).float().to(torch.float8_e4m3fn).double() * scale
    assert torch.equal(got.double(), want.view(3, 64))
    assert torch.equal(fp8_round(x[:, :40], 32), x[:, :40])  # not whole blocks: unchanged


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(kv_source_layer_ids=[3]), "kv source at or before"),
        (dict(compress_ratios=[0, 0, 2, 1, 1, 1]), "share its kv source"),
        (dict(index_source_layer_ids=[4, 5]), "also be an index source"),
        (dict(candidate_source_layer_id=2), "share its kv source"),
        (dict(kv_source_layer_ids=[0, 4]), "compress_ratios > 0"),
    ],
)
def test_inconsistent_schedules_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        V41Config(**{**TINY, **change})
