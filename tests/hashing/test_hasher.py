"""N-gram addressing: an independent pure-Python oracle, numpy == torch, streaming, uniformity."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.errors import InputError
from engram_sdk.hashing import NgramConfig, NgramHasher, head_primes, is_prime

INT64_MAX = 2**63 - 1


def trial_division_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def oracle_addresses(cfg: NgramConfig, ids: list[list[int]], layer: int) -> np.ndarray:
    """The Engram spec written with Python integers, one token at a time."""
    half = max(1, (INT64_MAX // cfg.vocab_size) // 2)
    r = np.random.default_rng(cfg.seed + 10007 * layer).integers(
        0, half, size=cfg.max_ngram_size, dtype=np.int64
    )
    mult = [int(x) * 2 + 1 for x in r]
    # primes: distinct over every head of every layer, searched upward per layer, order, head
    taken: set[int] = set()
    primes: dict[int, list[list[int]]] = {}
    for lay in cfg.layer_ids:
        per_order = []
        for size in cfg.engram_vocab_size:
            cand, heads = size, []
            for _ in range(cfg.n_head_per_ngram):
                while not trial_division_prime(cand) or cand in taken:
                    cand += 1
                taken.add(cand)
                heads.append(cand)
                cand += 1
            per_order.append(heads)
        primes[lay] = per_order
    out = []
    for row in ids:
        row_out = []
        for t in range(len(row)):
            heads = []
            for n in range(2, cfg.max_ngram_size + 1):
                mix = 0
                for k in range(n):
                    tok = row[t - k] if t - k >= 0 else cfg.pad_id
                    mix ^= tok * mult[k]
                assert 0 <= mix <= INT64_MAX
                heads += [mix % p for p in primes[layer][n - 2]]
            row_out.append(heads)
        out.append(row_out)
    return np.array(out, dtype=np.int64)


configs = st.builds(
    lambda v, n, h, sizes, layers, seed, pad: NgramConfig(
        vocab_size=v,
        max_ngram_size=n,
        n_head_per_ngram=h,
        engram_vocab_size=[sizes[i % len(sizes)] for i in range(n - 1)],
        layer_ids=layers,
        seed=seed,
        pad_id=pad % v,
    ),
    st.integers(2, 200_000),
    st.integers(2, 4),
    st.integers(1, 4),
    st.lists(st.integers(2, 5000), min_size=1, max_size=3),
    st.lists(st.integers(0, 40), min_size=1, max_size=3, unique=True),
    st.integers(0, 2**31),
    st.integers(0, 10**6),
)


def random_ids(cfg: NgramConfig, seed: int, b: int, t: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, size=(b, t), dtype=np.int64)


def test_hand_computed_tiny_case() -> None:
    cfg = NgramConfig(
        vocab_size=10,
        max_ngram_size=2,
        n_head_per_ngram=2,
        engram_vocab_size=[5],
        layer_ids=[0],
        pad_id=0,
        seed=0,
    )
    h = NgramHasher(cfg)
    assert h.primes == {0: [[5, 7]]}
    m0, m1 = (int(x) for x in h.multipliers[0])
    assert m0 % 2 == 1 and m1 % 2 == 1 and max(m0, m1) <= INT64_MAX // 10
    ids = np.array([[3, 4]])
    got = h.hash(ids, 0)
    first = (3 * m0) ^ (0 * m1)
    second = (4 * m0) ^ (3 * m1)
    assert got.tolist() == [[[first % 5, first % 7], [second % 5, second % 7]]]
    flat = h.hash(ids, 0, flat=True)
    assert (flat[..., 1] - got[..., 1] == 5).all() and (flat[..., 0] == got[..., 0]).all()
    assert h.table_rows(0) == 12


@settings(max_examples=40, deadline=None)
@given(cfg=configs, seed=st.integers(0, 1000))
def test_numpy_and_torch_match_the_oracle(cfg: NgramConfig, seed: int) -> None:
    h = NgramHasher(cfg)
    ids = random_ids(cfg, seed, 2, 9)
    for layer in cfg.layer_ids:
        expected = oracle_addresses(cfg, ids.tolist(), layer)
        got_np = h.hash(ids, layer)
        got_torch = h.hash(torch.from_numpy(ids), layer)
        np.testing.assert_array_equal(got_np, expected)
        assert got_torch.dtype == torch.int64
        np.testing.assert_array_equal(got_torch.numpy(), expected)
        if h.fits_int32(layer):
            np.testing.assert_array_equal(
                h.hash_torch(torch.from_numpy(ids), layer, out_dtype=torch.int32).numpy(), expected
            )
        assert (got_np >= 0).all()
        assert (got_np < np.array(h.head_sizes(layer))).all()


@settings(max_examples=30, deadline=None)
@given(cfg=configs, seed=st.integers(0, 1000), cut=st.integers(0, 30), length=st.integers(1, 30))
def test_streaming_equals_whole(cfg: NgramConfig, seed: int, cut: int, length: int) -> None:
    h = NgramHasher(cfg)
    ids = random_ids(cfg, seed, 3, length)
    cut = min(cut, length)
    layer = cfg.layer_ids[-1]
    whole = h.hash(ids, layer)
    head, tail = ids[:, :cut], ids[:, cut:]
    if tail.shape[1]:
        np.testing.assert_array_equal(h.hash(tail, layer, prefix=head), whole[:, cut:])
        tp = h.hash(torch.from_numpy(tail), layer, prefix=torch.from_numpy(head))
        np.testing.assert_array_equal(tp.numpy(), whole[:, cut:])


def test_fingerprints_are_the_pre_modulus_mix() -> None:
    cfg = NgramConfig(
        vocab_size=1000,
        max_ngram_size=3,
        n_head_per_ngram=2,
        engram_vocab_size=[97, 101],
        layer_ids=[0],
    )
    h = NgramHasher(cfg)
    ids = random_ids(cfg, 1, 2, 50)
    fp3 = h.fingerprints(ids, 3)
    addr = h.hash(ids, 0)
    primes = h.head_sizes(0)
    np.testing.assert_array_equal(fp3 % primes[2], addr[..., 2])
    # streaming holds for fingerprints too
    np.testing.assert_array_equal(h.fingerprints(ids[:, 20:], 3, prefix=ids[:, :20]), fp3[:, 20:])


def test_primes_are_distinct_prime_and_above_table_size() -> None:
    primes = head_primes([0, 1, 2], [1000, 1000], 8)
    flat = [p for lay in primes.values() for per in lay for p in per]
    assert len(flat) == len(set(flat)) == 48
    assert all(is_prime(p) and trial_division_prime(p) and p >= 1000 for p in flat)
    assert not is_prime(561) and not is_prime(3215031751) and is_prime(2**61 - 1)


def test_uniformity_chi_square() -> None:
    cfg = NgramConfig(
        vocab_size=50_000,
        max_ngram_size=3,
        n_head_per_ngram=4,
        engram_vocab_size=[1000, 1000],
        layer_ids=[3],
    )
    h = NgramHasher(cfg)
    ids = random_ids(cfg, 7, 4, 50_000)
    addr = h.hash(ids, 3)
    for head, p in enumerate(h.head_sizes(3)):
        counts = np.bincount(addr[..., head].ravel(), minlength=p)
        expected = counts.sum() / p
        chi2 = ((counts - expected) ** 2 / expected).sum()
        dof = p - 1
        # 5 sigma bound of the chi-square distribution (mean dof, std sqrt(2 dof))
        assert abs(chi2 - dof) < 5 * (2 * dof) ** 0.5, (head, chi2, dof)


def test_reproducible_across_processes() -> None:
    code = (
        "import numpy as np;from engram_sdk.hashing import NgramConfig,NgramHasher;"
        "c=NgramConfig(vocab_size=1000,engram_vocab_size=[500,700],layer_ids=[1,5]);"
        "h=NgramHasher(c);ids=np.arange(40).reshape(2,20)*7;"
        "print(int(h.hash(ids,5).sum()), int(h.hash(ids,1)[1,7,3]))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    cfg = NgramConfig(vocab_size=1000, engram_vocab_size=[500, 700], layer_ids=[1, 5])
    h = NgramHasher(cfg)
    ids = np.arange(40).reshape(2, 20) * 7
    assert outs == {f"{int(h.hash(ids, 5).sum())} {int(h.hash(ids, 1)[1, 7, 3])}\n"}


def test_bad_inputs() -> None:
    cfg = NgramConfig(vocab_size=100, engram_vocab_size=[50, 60], layer_ids=[1])
    h = NgramHasher(cfg)
    with pytest.raises(InputError, match="shape"):
        h.hash(np.zeros(5, dtype=np.int64), 1)
    with pytest.raises(InputError, match=r"\[0, 100\)"):
        h.hash(np.array([[1, 100]]), 1)
    with pytest.raises(InputError, match="not an Engram layer"):
        h.hash(np.array([[1, 2]]), 2)
    with pytest.raises(InputError, match="integer"):
        h.hash(torch.zeros(1, 3), 1)
    with pytest.raises(ValueError, match="one table size per N-gram order"):
        NgramConfig(vocab_size=100, engram_vocab_size=[50], max_ngram_size=3)
    with pytest.raises(ValueError, match="newer"):
        NgramConfig(vocab_size=100, format_version=99)


@pytest.mark.gpu
def test_cuda_matches_numpy() -> None:
    cfg = NgramConfig(vocab_size=62369, engram_vocab_size=[640_000, 640_000], layer_ids=[1, 15])
    h = NgramHasher(cfg)
    ids = random_ids(cfg, 3, 4, 4096)
    dev = torch.from_numpy(ids).cuda()
    for layer in cfg.layer_ids:
        ref = h.hash(ids, layer, flat=True)
        np.testing.assert_array_equal(h.hash_torch(dev, layer, flat=True).cpu().numpy(), ref)
        got32 = h.hash_torch(dev, layer, flat=True, out_dtype=torch.int32, compiled=True)
        assert got32.dtype == torch.int32
        np.testing.assert_array_equal(got32.cpu().numpy(), ref)
        plain = h.hash_torch(dev, layer, compiled=True)
        np.testing.assert_array_equal(plain.cpu().numpy(), h.hash(ids, layer))
        streamed = h.hash_torch(
            dev[:, 1000:], layer, prefix=dev[:, :1000], flat=True, compiled=True
        )
        np.testing.assert_array_equal(streamed.cpu().numpy(), ref[:, 1000:])
        one = h.hash_torch(dev[:, -1:], layer, prefix=dev[:, :-1], flat=True, compiled=True)
        np.testing.assert_array_equal(one.cpu().numpy(), ref[:, -1:])
    small = NgramHasher(NgramConfig(vocab_size=1000, engram_vocab_size=[97, 101], layer_ids=[0]))
    ids = random_ids(small.config, 4, 2, 300)
    got = small.hash_torch(torch.from_numpy(ids).cuda(), 0, compiled=True)
    np.testing.assert_array_equal(got.cpu().numpy(), small.hash(ids, 0))


@settings(max_examples=200, deadline=None)
@given(
    xs=st.lists(st.integers(0, INT64_MAX), min_size=1, max_size=64),
    p=st.integers(4096, 2**31 - 1),
)
def test_reciprocal_remainder_is_exact(xs: list[int], p: int) -> None:
    from engram_sdk.hashing.torch_kernel import remainder_by_reciprocal

    x = torch.tensor(xs, dtype=torch.int64)
    pt = torch.tensor(p, dtype=torch.int64)
    got = remainder_by_reciprocal(x, pt, 1.0 / pt.to(torch.float64))
    assert got.tolist() == [v % p for v in xs]


def test_fast_path_equals_numpy_on_cpu() -> None:
    from engram_sdk.hashing import torch_kernel

    cfg = NgramConfig(vocab_size=62369, engram_vocab_size=[646400, 646400], layer_ids=[1, 15])
    h = NgramHasher(cfg)
    ids = random_ids(cfg, 11, 3, 777)
    for layer in cfg.layer_ids:
        got = torch_kernel.addresses(
            torch.from_numpy(ids),
            [int(m) for m in h.multipliers[layer]],
            h._primes_on(layer, "cpu"),
            cfg.pad_id,
            inv_primes=h._inverse_primes_on(layer, "cpu"),
        )
        np.testing.assert_array_equal(got.numpy(), h.hash(ids, layer))
