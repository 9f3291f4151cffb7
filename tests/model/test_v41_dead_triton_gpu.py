"""DEAD-token blocking in the fused Triton addressing kernel (CUDA only, skipped elsewhere).

The kernel is called directly, so a missing Triton fails the test instead of falling back to
the torch path. Oracle: the blocking rule written with Python integers (element k of the
n-gram ending at t is row[t-k] unless t-k < 0 or a DEAD id sits in row[t-k..t]; then it is
the pad id; mix = XOR_k element_k * multiplier_k; address = mix % prime + head offset), and
the numpy path on V4.1-Flash's real addressing (primes from 16,000,000, 24 columns).

Run on a CUDA machine:  python -m pytest tests/model/test_v41_dead_triton_gpu.py -q -rs
"""

import numpy as np
import pytest
import torch
from engram_sdk.model.v4.engram import engram_hasher
from engram_sdk.model.v4.presets import get_v41_preset

from engram_sdk.hashing import DEAD_ID, NgramConfig, NgramHasher

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _triton_addresses(
    hasher: NgramHasher, ids: torch.Tensor, layer: int, prefix: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:  # fmt: skip
    from engram_sdk.hashing.triton_kernel import addresses_triton

    return addresses_triton(
        ids, *hasher._triton_tables(layer, ids.device, True), hasher.config.pad_id, prefix,
        out_dtype, block_dead=True,
    )  # fmt: skip


def _oracle(hasher: NgramHasher, rows: list[list[int]], layer: int) -> np.ndarray:
    cfg = hasher.config
    mult = [int(m) for m in hasher.multipliers[layer]]
    offsets = [int(o) for o in hasher.head_offsets(layer)]
    primes = [p for order in hasher.primes[layer] for p in order]
    out = []
    for row in rows:
        positions = []
        for t in range(len(row)):
            heads = []
            for n in range(2, cfg.max_ngram_size + 1):
                mix, stopped = 0, False
                for k in range(n):
                    stopped = stopped or t - k < 0 or row[t - k] == DEAD_ID
                    mix ^= (cfg.pad_id if stopped else row[t - k]) * mult[k]
                heads += [mix] * cfg.n_head_per_ngram
            positions.append([m % p + o for m, p, o in zip(heads, primes, offsets, strict=True)])
        out.append(positions)
    return np.array(out, dtype=np.int64)


def _hasher(max_n: int) -> NgramHasher:
    return NgramHasher(NgramConfig(
        vocab_size=5000, max_ngram_size=max_n, n_head_per_ngram=3,
        engram_vocab_size=[5003 + 97 * i for i in range(max_n - 1)], layer_ids=[1, 14],
        pad_id=2, block_dead=True,
    ))  # fmt: skip


def _rows() -> list[list[int]]:
    """DEAD at the start, the end, in runs, alone; lengths around the 256-position block."""
    rng = np.random.default_rng(3)
    rows = []
    for length in (1, 2, 5, 255, 256, 257, 600):
        row = rng.integers(0, 5000, size=length).tolist()
        for i in rng.choice(length, size=max(1, length // 15), replace=False):
            row[int(i)] = DEAD_ID
        rows.append(row)
    rows[3][0] = rows[4][-1] = DEAD_ID
    rows[5][100:104] = [DEAD_ID] * 4
    return rows


@pytest.mark.parametrize("max_n", [2, 3, 4, 5])
@pytest.mark.parametrize("out_dtype", [torch.int32, torch.int64])
def test_triton_kernel_equals_the_integer_oracle_with_dead_ids(
    max_n: int, out_dtype: torch.dtype
) -> None:
    hasher = _hasher(max_n)
    for row in _rows():
        want = _oracle(hasher, [row], 14)
        ids = torch.tensor([row], device="cuda")
        got = _triton_addresses(hasher, ids, 14, None, out_dtype)
        assert got.dtype == out_dtype
        np.testing.assert_array_equal(got.cpu().numpy().astype(np.int64), want)


@pytest.mark.parametrize("cut", [1, 3, 99, 256, 599])
def test_triton_chunked_continuation_equals_the_whole_sequence(cut: int) -> None:
    hasher = _hasher(4)
    rng = np.random.default_rng(cut)
    ids = rng.integers(0, 5000, size=(3, 600))
    ids[rng.random(ids.shape) < 0.1] = DEAD_ID
    ids[1, cut - 1] = DEAD_ID  # a DEAD id at the prefix's last position
    want = _oracle(hasher, ids.tolist(), 1)
    dev = torch.from_numpy(ids).cuda()
    got = _triton_addresses(hasher, dev[:, cut:], 1, dev[:, :cut], torch.int64)
    np.testing.assert_array_equal(got.cpu().numpy(), want[:, cut:])


def test_v41_flash_addressing_on_triton_equals_numpy_and_the_hasher_routes_to_it() -> None:
    cfg = get_v41_preset("deepseek-v4.1-flash")
    hasher = engram_hasher(cfg, cfg.engram_pad_id)
    rng = np.random.default_rng(7)
    ids = rng.integers(0, cfg.engram_compressed_vocab_size, size=(4, 4099))
    ids[rng.random(ids.shape) < 0.05] = DEAD_ID
    ids[2, :300] = DEAD_ID  # an image span at the start
    dev = torch.from_numpy(ids).cuda()
    for layer in cfg.engram_layer_ids:
        want = hasher.hash(ids, layer, flat=True)
        assert want.shape[-1] == 24
        for out_dtype in (torch.int32, torch.int64):
            got = _triton_addresses(hasher, dev, layer, None, out_dtype)
            np.testing.assert_array_equal(got.cpu().numpy().astype(np.int64), want)
        routed = hasher.hash_torch(dev, layer, flat=True, compiled=True)
        np.testing.assert_array_equal(routed.cpu().numpy(), want)
        part = hasher.hash_torch(dev[:, 1000:], layer, prefix=dev[:, :1000], flat=True,
                                 compiled=True)  # fmt: skip
        np.testing.assert_array_equal(part.cpu().numpy(), want[:, 1000:])
