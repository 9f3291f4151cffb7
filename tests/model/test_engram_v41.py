"""DeepSeek-V4.1's Engram variant against a float64 formula, with V4.1 addressing."""

import math

import numpy as np
import torch

from engram_sdk.engram import EngramV41
from engram_sdk.hashing import DEAD_ID, NgramConfig, NgramHasher


def test_engram_v41_layer_equals_the_float64_formula() -> None:
    cfg = NgramConfig(vocab_size=700, max_ngram_size=4, n_head_per_ngram=2,
                      engram_vocab_size=[1601] * 3, layer_ids=[1], pad_id=2,
                      block_dead=True)  # fmt: skip
    hasher = NgramHasher(cfg)
    torch.manual_seed(0)
    d, hc, head_dim = 16, 3, 8
    layer = EngramV41(1, d, hc, cfg.heads_total, head_dim, hasher.table_rows(1)).double()
    with torch.no_grad():
        layer.q_weight.uniform_(0.5, 1.5)
        layer.k_weight.uniform_(0.5, 1.5)
    ids = np.random.default_rng(0).integers(0, 700, (2, 12))
    ids[0, 5] = DEAD_ID
    mask = torch.from_numpy(ids != DEAD_ID)
    addr = torch.from_numpy(hasher.hash(ids, 1, flat=True))
    hidden = torch.randn(2, 12, hc, d, dtype=torch.float64)
    with torch.no_grad():
        got = layer(hidden, addr, mask)
        rows = layer.table.embedding.weight.numpy()
        wkv = layer.wkv.weight.numpy()
        qk = (layer.q_weight * layer.k_weight).numpy()
    want = np.zeros((2, 12, hc, d))
    h = hidden.numpy()
    for b in range(2):
        for t in range(12):
            e = np.concatenate([rows[a] for a in addr[b, t].tolist()])
            kv = wkv @ e
            value = kv[hc * d :]
            for i in range(hc):
                key = kv[i * d : (i + 1) * d]
                rms_h = math.sqrt((h[b, t, i] ** 2).mean() + 1e-20)
                rms_k = math.sqrt((key**2).mean() + 1e-20)
                dot = float((h[b, t, i] * qk[i] * key).sum()) / (rms_h * rms_k * math.sqrt(d))
                gate = 1 / (1 + math.exp(-math.copysign(math.sqrt(max(abs(dot), 1e-6)), dot)))
                want[b, t, i] = (gate if mask[b, t] else 0.0) * value
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    assert np.abs(want[0, 5]).max() == 0 and np.abs(want[1, 5]).max() > 0
