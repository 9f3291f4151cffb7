"""Sparse attention (chunked running top-k + gathered attention) against dense references."""

import numpy as np
import pytest
import torch
from engram_sdk.model.sparse import (
    EMPTY,
    indexer_topk,
    sparse_attention,
    window_indices,
)

from engram_sdk.errors import InputError


def _brute_topk(q, w, keys, query_pos, k, window=0):
    """numpy float64: full score matrix, visible keys only, ties to the earliest key."""
    q, w, keys = (a.double().numpy() for a in (q, w, keys))
    b, t = query_pos.shape
    s = keys.shape[1]
    out = np.full((b, t, k), EMPTY)
    for bi in range(b):
        for ti in range(t):
            p = int(query_pos[bi, ti])
            lo = p - window + 1 if window else 0
            cand = [j for j in range(s) if max(lo, 0) <= j <= p]
            score = {
                j: sum(
                    w[bi, ti, h] * max(q[bi, ti, h] @ keys[bi, j], 0.0) for h in range(q.shape[2])
                )
                for j in cand
            }
            ranked = sorted(cand, key=lambda j: (-score[j], j))[:k]
            out[bi, ti, : len(ranked)] = ranked
    return out


@pytest.mark.parametrize("key_chunk,tile_elements", [(64, 2**20), (3, 36), (5, 100)])
@pytest.mark.parametrize("window", [0, 4])
def test_running_topk_equals_full_sort(key_chunk: int, tile_elements: int, window: int) -> None:
    g = torch.Generator().manual_seed(0)
    b, t, h, d, k = 2, 11, 3, 8, 4
    q, w = torch.randn(b, t, h, d, generator=g), torch.randn(b, t, h, generator=g)
    keys = torch.randn(b, t, d, generator=g)
    pos = torch.arange(t).expand(b, t)
    got = indexer_topk(
        q, w, keys, pos, k, window=window, key_chunk=key_chunk, tile_elements=tile_elements
    )
    want = _brute_topk(q, w, keys, pos, k, window)
    # same set per query (the order inside a query's k slots does not matter)
    np.testing.assert_array_equal(np.sort(got.numpy(), -1), np.sort(want, -1))


def test_running_topk_with_per_row_positions_sees_only_each_rows_past() -> None:
    g = torch.Generator().manual_seed(1)
    q, w = torch.randn(2, 1, 2, 4, generator=g), torch.randn(2, 1, 2, generator=g).abs()
    keys = torch.randn(2, 9, 4, generator=g)
    pos = torch.tensor([[8], [3]])  # row 1 holds 4 tokens, the rest of its buffer is garbage
    got = indexer_topk(q, w, keys, pos, 6, key_chunk=4)
    want = _brute_topk(q, w, keys, pos, 6)
    np.testing.assert_array_equal(np.sort(got.numpy(), -1), np.sort(want, -1))
    assert (got[1] == EMPTY).sum() == 2  # 4 visible keys for 6 slots


def test_decode_topk_over_a_static_capacity_sees_every_key_up_to_each_row() -> None:
    """A recorded decode step's bound: the whole capacity (``latest_position`` =
    capacity - 1), in several key chunks, later positions masked → each row's own top-k."""
    g = torch.Generator().manual_seed(2)
    q, w = torch.randn(2, 1, 2, 4, generator=g), torch.randn(2, 1, 2, generator=g)
    keys = torch.randn(2, 40, 4, generator=g)  # capacity 40, rows hold 31 and 12 tokens
    pos = torch.tensor([[30], [11]])
    got = indexer_topk(q, w, keys, pos, 5, key_chunk=8, tile_elements=16, latest_position=39)
    want = _brute_topk(q, w, keys, pos, 5)
    np.testing.assert_array_equal(np.sort(got.numpy(), -1), np.sort(want, -1))


def _dense_masked(q, keys, values, mask, scale):
    """Reference: full scores, everything outside ``mask`` (B, T, S) at -inf, float64."""
    scores = torch.einsum("bthd,bsd->bths", q, keys) * scale
    scores = scores.masked_fill(~mask[:, :, None], float("-inf"))
    return torch.einsum("bths,bsd->bthd", scores.softmax(-1), values)


def _mask_from(idx, s):
    mask = torch.zeros(*idx.shape[:2], s + 1, dtype=torch.bool)
    mask.scatter_(-1, idx.clamp(min=-1) % (s + 1), True)  # EMPTY lands in the spare column
    return mask[..., :s]


def _inputs(seed, b=2, t=9, h=3, dk=6, dv=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, t, h, dk, generator=g, dtype=dtype),
        torch.randn(b, t, dk, generator=g, dtype=dtype),
        torch.randn(b, t, dv, generator=g, dtype=dtype),
    )


def test_sparse_attention_equals_dense_masked_reference() -> None:
    q, keys, values = _inputs(2)
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(2, 9, 9, generator=g)
    causal = torch.ones(9, 9, dtype=torch.bool).tril()
    idx = scores.masked_fill(~causal, -1).topk(4, dim=-1).indices
    idx = idx.masked_fill(~causal.expand(2, 9, 9).gather(-1, idx), EMPTY)  # early rows: fewer
    got = sparse_attention(q, keys, values, idx, 0.37, query_chunk=4)
    torch.testing.assert_close(got, _dense_masked(q, keys, values, _mask_from(idx, 9), 0.37))


def test_sparse_attention_with_k_at_least_seq_len_is_dense_causal_attention() -> None:
    q, keys, values = _inputs(4)
    pos = torch.arange(9).expand(2, 9)
    idx = indexer_topk(q.float(), torch.ones(2, 9, 3), keys.float(), pos, 16)
    got = sparse_attention(q, keys, values, idx, 0.5)
    causal = torch.ones(9, 9, dtype=torch.bool).tril().expand(2, 9, 9)
    torch.testing.assert_close(got, _dense_masked(q, keys, values, causal, 0.5))


def test_sparse_attention_gradients_equal_the_dense_masked_reference() -> None:
    q, keys, values = (a.requires_grad_() for a in _inputs(5))
    idx = window_indices(torch.arange(9).expand(2, 9), 3)
    upstream = torch.randn(
        2, 9, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6)
    )
    (sparse_attention(q, keys, values, idx, 0.4, query_chunk=2) * upstream).sum().backward()
    got = [a.grad.clone() for a in (q, keys, values)]
    for a in (q, keys, values):
        a.grad = None
    (_dense_masked(q, keys, values, _mask_from(idx, 9), 0.4) * upstream).sum().backward()
    for g, a in zip(got, (q, keys, values), strict=True):
        torch.testing.assert_close(g, a.grad)


def test_window_indices_list_the_last_positions() -> None:
    idx = window_indices(torch.tensor([[0, 5]]), 3)
    assert idx.tolist() == [[[EMPTY, EMPTY, 0], [3, 4, 5]]]


def test_bad_backend_and_topk_are_named() -> None:
    q, keys, values = _inputs(7)
    with pytest.raises(InputError, match="backend"):
        sparse_attention(q, keys, values, torch.zeros(2, 9, 1, dtype=torch.long), 1.0, backend="x")
    with pytest.raises(InputError, match="topk"):
        indexer_topk(q, torch.ones(2, 9, 3), keys, torch.arange(9).expand(2, 9), 0)


def test_running_topk_over_compressed_blocks_sees_only_finished_blocks() -> None:
    g = torch.Generator().manual_seed(8)
    b, t, h, d, n_blocks = 1, 16, 2, 4, 4  # one compressed key per 4 tokens
    q, w = torch.randn(b, t, h, d, generator=g), torch.randn(b, t, h, generator=g)
    keys = torch.randn(b, n_blocks, d, generator=g)
    block_end = torch.arange(n_blocks) * 4 + 3  # a block is visible once its last token is
    got = indexer_topk(q, w, keys, torch.arange(t)[None], 2, key_pos=block_end, key_chunk=3)
    qd, wd, kd = q.double(), w.double(), keys.double()
    for ti in range(t):
        seen = [j for j in range(n_blocks) if int(block_end[j]) <= ti]
        score = {j: float((wd[0, ti] * (qd[0, ti] @ kd[0, j]).clamp(min=0)).sum()) for j in seen}
        want = sorted(seen, key=lambda j: (-score[j], j))[:2]
        assert sorted(x for x in got[0, ti].tolist() if x != EMPTY) == sorted(want), ti
