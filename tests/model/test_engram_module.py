"""The Engram layer on its own, checked against float64 re-computations and nn.Embedding."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from engram_sdk.engram import EmbeddingTable, Engram, EngramTable
from engram_sdk.hashing import NgramConfig, NgramHasher


def _hasher() -> NgramHasher:
    cfg = NgramConfig(
        vocab_size=500,
        max_ngram_size=3,
        n_head_per_ngram=2,
        engram_vocab_size=[211, 307],
        layer_ids=[0],
        pad_id=1,
    )
    return NgramHasher(cfg)


def test_embedding_table_lookup_equals_nn_embedding_over_flat_addresses() -> None:
    hasher = _hasher()
    table = EmbeddingTable(hasher.table_rows(0), 6)
    assert isinstance(table, EngramTable)
    reference = nn.Embedding(hasher.table_rows(0), 6)
    reference.weight.data.copy_(table.embedding.weight.data)
    ids = np.random.default_rng(0).integers(0, 500, (3, 11))
    flat = torch.from_numpy(hasher.hash(ids, 0, flat=True))
    assert int(flat.max()) < table.rows
    assert torch.equal(table.lookup(flat), reference(flat))


F64_EPS = torch.finfo(torch.float64).eps  # deepseek-ai/Engram: key/query norms at the dtype's eps
CONV_EPS = 1e-5  # ... and its short convolution's norms at 1e-5


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float = F64_EPS) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


@pytest.mark.parametrize("hc_mult", [1, 3])
def test_engram_forward_matches_float64_formula_and_streams_in_pieces(hc_mult: int) -> None:
    torch.manual_seed(0)
    hasher = _hasher()
    d, max_n, k = 8, 3, 4
    layer = Engram(0, d, hc_mult, max_n, 2, 8, hasher.table_rows(0), kernel_size=k).double()
    for norm in [*layer.key_norms, *layer.query_norms, *layer.short_conv.norms]:
        norm.weight.data.uniform_(0.5, 1.5)
    layer.short_conv.conv.weight.data.normal_()  # zero at init; make it count here
    ids = np.random.default_rng(1).integers(0, 500, (2, 13))
    addr = torch.from_numpy(hasher.hash(ids, 0, flat=True))
    hidden = torch.randn(2, 13, hc_mult, d, dtype=torch.float64)
    with torch.no_grad():
        got, _ = layer(hidden, addr)
        mem = layer.table.embedding.weight[addr].flatten(-2)
        v = layer.value_proj(mem)
        w_conv = layer.short_conv.conv.weight[:, 0]  # (hc*d, k)
        want = torch.empty_like(hidden)
        for i in range(hc_mult):
            key = _rms(layer.key_projs[i](mem), layer.key_norms[i].weight)
            query = _rms(hidden[:, :, i], layer.query_norms[i].weight)
            dot = (key * query).sum(-1) / math.sqrt(d)
            gate = torch.sigmoid(torch.sign(dot) * torch.sqrt(dot.abs()))
            value = gate[..., None] * v
            normed = _rms(value, layer.short_conv.norms[i].weight, CONV_EPS)
            conv = torch.zeros_like(value)
            for t in range(13):
                for j in range(k):  # tap j looks (k-1-j)*dilation positions back
                    src = t - (k - 1 - j) * max_n
                    if src >= 0:
                        conv[:, t] += w_conv[i * d : (i + 1) * d, j] * normed[:, src]
            want[:, :, i] = value + conv * torch.sigmoid(conv)
        torch.testing.assert_close(got, want)
        first, state = layer(hidden[:, :5], addr[:, :5])
        second, _ = layer(hidden[:, 5:], addr[:, 5:], state)
        torch.testing.assert_close(torch.cat([first, second], 1), got)


def test_set_table_rejects_a_table_of_the_wrong_shape() -> None:
    layer = Engram(2, 8, 1, 3, 2, 8, 100)
    with pytest.raises(ValueError, match="layer 2 needs 100x4"):
        layer.set_table(EmbeddingTable(99, 4))
    other = EmbeddingTable(100, 4)
    layer.set_table(other)
    assert layer.table is other


def test_engram_module_does_not_import_the_model() -> None:
    code = "import sys, engram_sdk.engram; print('engram_sdk.model' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_fresh_engram_layer_adds_only_the_gated_value() -> None:
    """The paper zero-initialises the short convolution, so Engram starts as identity on it."""
    torch.manual_seed(0)
    hasher = _hasher()
    layer = Engram(0, 8, 2, 3, 2, 8, hasher.table_rows(0)).double()
    assert torch.count_nonzero(layer.short_conv.conv.weight) == 0
    assert layer.key_norms[0].eps is None and layer.short_conv.norms[0].eps == CONV_EPS
    ids = np.random.default_rng(2).integers(0, 500, (1, 9))
    addr = torch.from_numpy(hasher.hash(ids, 0, flat=True))
    hidden = torch.randn(1, 9, 2, 8, dtype=torch.float64)
    with torch.no_grad():
        got, _ = layer(hidden, addr)
        memory = layer.table.embedding.weight[addr].flatten(-2)
        want = layer.gate(hidden, memory) * layer.value_proj(memory).unsqueeze(2)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
