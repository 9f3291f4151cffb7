"""The Triton kernels (sparse attention, indexer scores) against the torch path, interpreted.

Skipped where Triton is not installed; on a GPU, ``benchmarks/long_context_gpu.py`` runs the
same comparison on the device.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import os

    import torch
    from engram_sdk.model.sparse import EMPTY, sparse_attention, window_indices
    from engram_sdk.model.sparse_triton import sparse_attention_triton

    g = torch.Generator().manual_seed(0)
    for b, t, h, r, rope, s, k in [(2, 3, 4, 32, 8, 40, 16), (1, 2, 3, 48, 16, 100, 70)]:
        q = torch.randn(b, t, h, r + rope, generator=g)
        latent = torch.randn(b, s + 5, r + rope, generator=g)[:, :s]  # a view, as the cache
        pos = (s - t + torch.arange(t)).expand(b, t)
        idx = window_indices(pos, k)
        idx[:, :, :3] = EMPTY  # empty slots are skipped
        idx[0, 0] = EMPTY  # a query with no key at all gets zeros
        want = sparse_attention(q, latent, latent[..., :r], idx, 0.1)
        for values in (latent[..., :r], latent[..., :r].clone()):  # latent view; separate values
            got = sparse_attention_triton(q, latent, values, idx, 0.1)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
            assert got[0, 0].abs().max() == 0

    from engram_sdk.model.sparse import indexer_topk

    for b, t, h, d, s, k, window in [(2, 70, 3, 32, 150, 9, 0), (1, 5, 4, 20, 9, 4, 3)]:
        q, w = torch.randn(b, t, h, d, generator=g), torch.randn(b, t, h, generator=g)
        keys = torch.randn(b, s, d, generator=g)
        pos = (s - t + torch.arange(t)).expand(b, t).contiguous()
        args = dict(window=window, key_chunk=64, tile_elements=4096)
        fused = indexer_topk(q, w, keys, pos, k, fused=True, **args)
        plain = indexer_topk(q, w, keys, pos, k, fused=False, **args)
        assert torch.equal(fused.sort(-1).values, plain.sort(-1).values)

    # threshold and collect: group maxima, the keys at or above a threshold, the top-k
    from engram_sdk.model.indexer_triton import collect_triton, group_max_triton
    from engram_sdk.model.sparse import index_scores, visible
    from engram_sdk.model.sparse_threshold import threshold_topk

    b, t, h, d, s, k = 2, 64, 2, 16, 200, 4
    q, w = torch.randn(b, t, h, d, generator=g), torch.randn(b, t, h, generator=g)
    keys = torch.randn(b, s, d, generator=g)
    pos = torch.stack([s - t + torch.arange(t), torch.arange(t)]).contiguous()  # row 1 from 0
    kp = torch.arange(s)
    scores = index_scores(q, w, keys).masked_fill(~visible(pos, kp), float("-inf"))
    padded = torch.nn.functional.pad(scores, (0, 256 - s), value=float("-inf"))
    maxima = group_max_triton(q, w, keys, pos, kp, 8)
    torch.testing.assert_close(maxima, padded.view(b, t, 32, 8).amax(-1), atol=1e-4, rtol=1e-4)
    for variant in (dict(stacked=True), dict(tiles_per_program=3)):  # heads in one dot; a loop
        again = group_max_triton(q, w, keys, pos, kp, 8, **variant)
        torch.testing.assert_close(again, maxima, atol=1e-4, rtol=1e-4)
    from engram_sdk.model.indexer_heads4 import group_max_heads4_triton

    for bt, tiles, skip in ((64, 1, True), (128, 3, False)):  # queries held across key tiles
        again = group_max_heads4_triton(q, w, keys, pos, kp, 8, block_t=bt,
                                        tiles_per_program=tiles, skip_full=skip)
        torch.testing.assert_close(again, maxima, atol=1e-4, rtol=1e-4)
    tau = maxima.kthvalue(maxima.shape[-1] - k + 1, dim=-1).values
    cand, cand_idx, count = collect_triton(q, w, keys, pos, kp, tau, s)
    want = (scores >= tau[..., None]) & scores.isfinite()  # visible keys only
    assert torch.equal(count, want.sum(-1).int())
    variants = (dict(stacked=True), dict(per_key=True), dict(per_key=True, tiles_per_program=3))
    for variant in variants:
        cand_v, idx_v, count_v = collect_triton(q, w, keys, pos, kp, tau, s, **variant)
        assert torch.equal(count_v, count), variant
        assert torch.equal(cand_v.sort(-1).values, cand.sort(-1).values), variant
    for bi in range(b):
        for ti in range(t):
            n = int(count[bi, ti])
            got = set(cand_idx[bi, ti, :n].tolist())
            assert got == set(want[bi, ti].nonzero()[:, 0].tolist())
            assert n >= min(k, ti + 1) and cand[bi, ti, n:].eq(float("-inf")).all()
    # single pass: every score written with the group maxima, candidates picked from memory
    from engram_sdk.model.indexer_stored import (
        SCORE_VARIANTS, SELECT_VARIANTS, scores_and_group_max_triton, select_groups_triton,
        select_triton,
    )

    every = os.environ.get("ALL_VARIANTS") == "1"  # every variant the timing may pick (slow)
    score_variants = list(SCORE_VARIANTS.values()) if every else [(64, 128, 4, 1, 1)]
    select_variants = list(SELECT_VARIANTS.values()) if every else [(2048, 4)]
    for bt, bs, nw, tp, st in score_variants:
        written, maxima_w = scores_and_group_max_triton(
            q, w, keys, pos, kp, 8, block_t=bt, block_s=bs, num_warps=nw, tiles_per_program=tp,
            stages=st,
        )
        torch.testing.assert_close(written, scores, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(maxima_w[..., :32], maxima, atol=1e-4, rtol=1e-4)
    cand_w, idx_w, count_w = select_triton(written, tau, s)
    for bl, nw in select_variants:
        for again in (select_triton(written, tau, s, bl, nw),  # all scores; live groups only
                      select_groups_triton(written, maxima_w, tau, s, 8, bl, nw)):
            assert torch.equal(again[2], count_w)
            assert torch.equal(again[0].sort(-1).values, cand_w.sort(-1).values)
            assert torch.equal(again[1].sort(-1).values, idx_w.sort(-1).values)
    want_w = (written >= tau[..., None]) & written.isfinite()
    assert torch.equal(count_w, want_w.sum(-1).int())
    for bi in range(b):
        for ti in range(t):
            n = int(count_w[bi, ti])
            assert set(idx_w[bi, ti, :n].tolist()) == set(want_w[bi, ti].nonzero()[:, 0].tolist())
            assert torch.equal(cand_w[bi, ti, :n].sort().values, written[bi, ti][want_w[bi, ti]].sort().values)
    plain = indexer_topk(q, w, keys, pos, k, fused=False)
    for capacity in (4 * k, k):  # plenty of room; overflowing rows: stored top-k / tiled path
        for path in ("stored", "rescored", "recompute"):
            got = threshold_topk(q, w, keys, pos, k, key_pos=kp, tile_elements=2**12,
                                 capacity=capacity, path=path)
            assert torch.equal(got.sort(-1).values, plain.sort(-1).values), (capacity, path)

    # recompute-select: tensor-core prefix slots == the scan's; sort-free k-th and pick
    from engram_sdk.model.indexer_recompute import collect_prefix_dot_triton
    from engram_sdk.model.sparse_select import kth_largest_triton, topk_pick_triton

    for tiles, warps in ((1, 4), (3, 8)) if every else ((1, 4),):
        cand_d, idx_d, count_d = collect_prefix_dot_triton(
            q, w, keys, pos, kp, tau, s, tiles_per_program=tiles, num_warps=warps)
        assert torch.equal(count_d, count)
        assert torch.equal(cand_d.sort(-1).values, cand.sort(-1).values)
        for bi in range(b):  # slots packed from 0, each kept key once
            for ti in range(t):
                n = int(count[bi, ti])
                assert sorted(idx_d[bi, ti, :n].tolist()) == sorted(cand_idx[bi, ti, :n].tolist())
    from engram_sdk.model.indexer_heads4 import collect_heads4_triton

    for dot, tiles, skip in ((True, 3, False), (False, 1, True)):  # queries held (<= 4 heads)
        cand_h, idx_h, count_h = collect_heads4_triton(
            q, w, keys, pos, kp, tau, s, prefix_dot=dot, tiles_per_program=tiles, skip_full=skip)
        assert torch.equal(count_h, count)
        assert torch.equal(cand_h.sort(-1).values, cand.sort(-1).values)
        assert torch.equal(idx_h.sort(-1).values, cand_idx.sort(-1).values)
    from engram_sdk.model.indexer_regions import collect_regions_triton

    for skip in (False, True):  # per key range slots, no atomics: the same keys, packed
        cand_r, idx_r, count_r = collect_regions_triton(q, w, keys, pos, kp, tau, 2 * s,
                                                        skip_full=skip, prefix_dot=skip)
        assert torch.equal(count_r, count)
        assert torch.equal(cand_r.sort(-1, descending=True).values[..., :s],
                           cand.sort(-1, descending=True).values)
        assert sorted(idx_r[0, -1][cand_r[0, -1] > float("-inf")].tolist()) == sorted(
            cand_idx[0, -1, : int(count[0, -1])].tolist())
    everything = torch.full_like(tau, -1e30)  # every visible key kept: 128 > 32 slots a range
    cand_r, _, count_r = collect_regions_triton(q, w, keys, pos, kp, everything, 64)
    assert torch.equal(count_r[0], torch.full_like(count_r[0], cand_r.shape[-1] + 1))
    assert torch.equal(kth_largest_triton(maxima, k), tau)  # exact: one of the row's values
    assert torch.equal(kth_largest_triton(scores, 1), scores.amax(-1))
    picked = topk_pick_triton(cand, cand_idx, k, EMPTY)
    assert torch.equal(picked.sort(-1).values, plain.sort(-1).values)

    # ties: a query whose head weights are all negative scores many keys exactly 0
    w_tie = w.clone()
    w_tie[0, -8:] = -w_tie[0, -8:].abs()
    tie_scores = index_scores(q, w_tie, keys).masked_fill(~visible(pos, kp), float("-inf"))
    want_top = tie_scores.topk(k, dim=-1).values
    for capacity in (4 * k, k):
        got = threshold_topk(q, w_tie, keys, pos, k, key_pos=kp, tile_elements=2**12,
                             capacity=capacity, path="recompute")
        got_scores = tie_scores.gather(-1, got.clamp(min=0)).masked_fill(got < 0, float("-inf"))
        torch.testing.assert_close(got_scores.sort(-1).values, want_top.sort(-1).values,
                                   atol=1e-5, rtol=1e-5)
        assert all(len(set(r[r >= 0].tolist())) == int((r >= 0).sum()) for r in got.view(-1, k))
    through = indexer_topk(q, w, keys, pos, k, fused=True)  # the split: early tiled, late threshold
    assert torch.equal(through.sort(-1).values, plain.sort(-1).values)
    print("ok")
    """
)


def _interpreted(every_variant: bool) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "ALL_VARIANTS": "1" if every_variant else "0"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_triton_kernels_equal_the_torch_path_in_the_interpreter() -> None:
    _interpreted(every_variant=False)


@pytest.mark.slow
def test_every_kernel_variant_equals_the_torch_path_in_the_interpreter() -> None:
    """Each tile shape, pipelined loop and select block that ``fastest`` may pick on a GPU."""
    _interpreted(every_variant=True)
