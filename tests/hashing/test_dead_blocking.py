"""DEAD-token blocking (DeepSeek-V4.1): the look-back stops at the sequence start and at DEAD
ids, whose positions hash the pad id. Checked bitwise against an oracle written from that
rule with Python integers, in numpy and torch, whole and in chunks."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.errors import InputError
from engram_sdk.hashing import DEAD_ID, NgramConfig, NgramHasher

INT64_MAX = 2**63 - 1


def oracle(cfg: NgramConfig, hasher: NgramHasher, row: list[int], layer: int) -> list[list[int]]:
    """Element k of the n-gram ending at t is row[t-k] unless t-k < 0 or a DEAD id sits in
    row[t-k..t]; then it is pad_id. mix = XOR_k element_k * multiplier_k; address = mix % p."""
    mult = [int(m) for m in hasher.multipliers[layer]]
    out = []
    for t in range(len(row)):
        heads = []
        for n in range(2, cfg.max_ngram_size + 1):
            mix, stopped = 0, False
            for k in range(n):
                stopped = stopped or t - k < 0 or row[t - k] == DEAD_ID
                mix ^= (cfg.pad_id if stopped else row[t - k]) * mult[k]
            assert 0 <= mix <= INT64_MAX
            heads += [mix % p for p in hasher.primes[layer][n - 2]]
        out.append(heads)
    return out


def tiny(max_n: int, pad: int = 3, **kw: object) -> NgramConfig:
    return NgramConfig(vocab_size=1000, max_ngram_size=max_n, n_head_per_ngram=2,
                       engram_vocab_size=[4099 + 10 * i for i in range(max_n - 1)],
                       layer_ids=[1, 14], pad_id=pad, block_dead=True, **kw)  # fmt: skip


def ids_with_dead(seed: int, b: int, t: int, dead_rate: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 1000, size=(b, t), dtype=np.int64)
    ids[rng.random((b, t)) < dead_rate] = DEAD_ID
    return ids


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 5), st.integers(0, 2**31), st.integers(1, 40), st.sampled_from([0.0, 0.2, 0.6])
)
def test_numpy_and_torch_equal_the_oracle_whole_and_in_chunks(
    max_n: int, seed: int, length: int, dead_rate: float
) -> None:
    cfg = tiny(max_n)
    hasher = NgramHasher(cfg)
    ids = ids_with_dead(seed, 2, length, dead_rate)
    cut = seed % (length + 1)
    for layer in cfg.layer_ids:
        want = np.array([oracle(cfg, hasher, row, layer) for row in ids.tolist()], dtype=np.int64)
        got = hasher.hash(ids, layer)
        assert np.array_equal(got.reshape(want.shape), want)
        assert torch.equal(hasher.hash(torch.from_numpy(ids), layer), torch.from_numpy(got))
        chunked = np.concatenate(
            [
                hasher.hash(ids[:, :cut], layer),
                hasher.hash(ids[:, cut:], layer, prefix=ids[:, :cut]),
            ],
            axis=1,
        )
        assert np.array_equal(chunked, got)
        prefix = torch.from_numpy(ids[:, :cut])
        torch_chunk = hasher.hash_torch(torch.from_numpy(ids[:, cut:]), layer, prefix=prefix)
        assert torch.equal(torch_chunk, torch.from_numpy(got[:, cut:]))


def test_a_dead_position_hashes_the_pad_id_and_blocks_what_follows_only_in_reach() -> None:
    cfg = tiny(3)
    hasher = NgramHasher(cfg)
    row = np.array([[5, 6, DEAD_ID, 7, 8, 9]])
    all_pad = hasher.hash(np.full((1, 1), cfg.pad_id), 1)[0, 0]
    got = hasher.hash(row, 1)
    assert np.array_equal(got[0, 2], all_pad)  # the DEAD position itself
    start = hasher.hash(np.array([[7, 8, 9]]), 1)[0]  # after DEAD: as a fresh sequence
    assert np.array_equal(got[0, 3:], start)


def test_without_dead_ids_blocking_changes_nothing() -> None:
    on, off = tiny(4), tiny(4).model_copy(update={"block_dead": False})
    ids = ids_with_dead(1, 3, 50, 0.0)
    for layer in on.layer_ids:
        assert np.array_equal(NgramHasher(on).hash(ids, layer), NgramHasher(off).hash(ids, layer))


def test_dead_ids_are_refused_unless_blocking_is_on() -> None:
    off = NgramHasher(tiny(3).model_copy(update={"block_dead": False}))
    with pytest.raises(InputError, match=r"\[0, 1000\)"):
        off.hash(np.array([[1, DEAD_ID]]), 1)
    with pytest.raises(InputError, match="DEAD_ID"):
        NgramHasher(tiny(3)).hash(np.array([[1, -2]]), 1)


@pytest.mark.gpu
def test_cuda_paths_equal_numpy_with_dead_ids() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cfg = NgramConfig(
        vocab_size=99092,
        max_ngram_size=4,
        n_head_per_ngram=8,
        engram_vocab_size=[16_000_000] * 3,
        layer_ids=[1, 14],
        pad_id=2,
        block_dead=True,
    )  # fmt: skip  (V4.1-Flash's addressing)
    h = NgramHasher(cfg)
    ids = np.random.default_rng(5).integers(0, 99092, size=(3, 3000), dtype=np.int64)
    ids[np.random.default_rng(6).random(ids.shape) < 0.05] = DEAD_ID
    dev = torch.from_numpy(ids).cuda()
    for layer in cfg.layer_ids:
        ref = h.hash(ids, layer, flat=True)
        for compiled in (False, True):
            got = h.hash_torch(dev, layer, flat=True, compiled=compiled)
            np.testing.assert_array_equal(got.cpu().numpy(), ref)
            part = h.hash_torch(dev[:, 999:], layer, prefix=dev[:, :999], flat=True,
                                compiled=compiled)  # fmt: skip
            np.testing.assert_array_equal(part.cpu().numpy(), ref[:, 999:])
