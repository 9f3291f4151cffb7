"""Checks of ``benchmarks/long_context_gpu.py`` (CUDA): the Triton kernels against the
torch path, every threshold path against the tiled top-k, every recompute kernel variant
against the generic kernels. Each returns lines ending in OK / agree, or naming a mismatch.
"""

from __future__ import annotations

import torch


def check_paths() -> list[str]:
    """Each threshold path's top-k against the tiled top-k (CUDA): the picked keys' scores
    as sorted lists (ties may pick other keys of equal score), and any key picked twice."""
    from engram_sdk.model.indexer_triton import index_scores_triton
    from engram_sdk.model.sparse import indexer_topk
    from engram_sdk.model.sparse_threshold import threshold_topk

    g = torch.Generator(device="cuda").manual_seed(1)
    t, s, k = 1024, 40000, 2048
    q = torch.randn(1, t, 4, 32, device="cuda", dtype=torch.bfloat16, generator=g)
    w = torch.randn(1, t, 4, device="cuda", generator=g)  # some rows all negative: ties at 0
    keys = torch.randn(1, s, 32, device="cuda", dtype=torch.bfloat16, generator=g)
    pos, kp = (s - t + torch.arange(t, device="cuda"))[None], torch.arange(s, device="cuda")
    scores = index_scores_triton(q, w, keys, pos, kp)
    tiled = indexer_topk(q, w, keys, pos, k, fused=True, threshold=False)
    want = scores.gather(-1, tiled).sort(-1).values
    lines = []
    for path in ("recompute", "stored", "rescored"):
        try:
            got = threshold_topk(q, w, keys, pos, k, key_pos=kp, tile_elements=2**28, path=path)
            picked = scores.gather(-1, got.clamp(min=0)).sort(-1).values
            err = (picked - want).abs().max().item() / want.abs().max().item()
            twice = int((got.sort(-1).values.diff(dim=-1) == 0).sum())
            verdict = "agree" if err < 1e-3 and not twice else "DIFFER"
            lines.append(f"check {path} top-k vs tiled: {verdict} (sorted picked scores: "
                         f"relative max |diff| {err:.1e}; keys picked twice: {twice})")  # fmt: skip
        except Exception as exc:  # report, go on
            lines.append(f"check {path} top-k vs tiled: FAILED {exc!r}"[:300])
    lines.append(_check_collect_variants(q, w, keys, pos, kp, k))
    return lines


def _check_collect_variants(q, w, keys, pos, kp, k: int) -> str:
    """Every recompute collect variant (and 4-heads group max) against the generic kernels:
    the same counts and sorted candidate scores (CUDA)."""
    from engram_sdk.model import indexer_recompute as rc
    from engram_sdk.model.indexer_heads4 import group_max_heads4_triton
    from engram_sdk.model.indexer_triton import _CHOSEN, collect_triton, group_max_triton
    from engram_sdk.model.sparse_threshold import kth_largest

    maxima = group_max_triton(q, w, keys, pos, kp, 16)
    bad = [name for name, v in rc.HEADS4_VARIANTS.items() if not torch.allclose(
        group_max_heads4_triton(q, w, keys, pos, kp, 16, block_t=v[0], tiles_per_program=v[1],
                                stages=v[2], num_warps=v[3], skip_full=v[4]), maxima,
        rtol=1e-5, atol=1e-6)]  # fmt: skip
    tau = kth_largest(maxima, k, sort_free=False)
    cand, _, count = collect_triton(q, w, keys, pos, kp, tau, 4 * k)
    want = cand.sort(-1, descending=True).values
    rc.collect((q, w, keys), pos, kp, tau, 4 * k)  # times the variants once (picks one)
    names = list(rc.COLLECT_VARIANTS)
    if q.shape[2] <= 4:
        names += [f"4 heads held, {n}" for n in rc.COLLECT_HEADS4_VARIANTS]
    for name in names:  # each variant in turn, as if it had been picked
        _CHOSEN[("collect, recompute", *q.shape[2:])] = name
        got, _, n = rc.collect((q, w, keys), pos, kp, tau, 4 * k)
        # rows that overflowed report different counts (a kernel's true count, or its
        # buffer width + 1): compare the rows that fit; scores to rounding (other kernels)
        fit = (count <= want.shape[-1]) & (n <= got.shape[-1])
        width = min(got.shape[-1], want.shape[-1])
        top = got.sort(-1, descending=True).values[..., :width][fit]
        same_n = torch.equal(n[fit], count[fit]) and torch.equal(n > got.shape[-1], ~fit)
        if not (same_n and torch.allclose(top, want[..., :width][fit], rtol=1e-5, atol=1e-6)):
            bad.append(f"{name} (counts off by <= {int((n - count)[fit].abs().max())})")
    verdict = "agree" if not bad else f"DIFFER: {', '.join(bad)}"
    return f"check 4-heads group max and {len(names)} collect variants vs generic: {verdict}"


def check_kernel() -> list[str]:
    from engram_sdk.model.sparse import indexer_topk, sparse_attention

    lines = []
    g = torch.Generator(device="cuda").manual_seed(0)
    for b, t, h, r, rope, s, k in [(2, 64, 8, 128, 32, 4096, 2048), (1, 8, 16, 384, 32, 9000, 2048),
                                   (3, 5, 4, 32, 8, 40, 16)]:  # fmt: skip
        q = torch.randn(b, t, h, r + rope, device="cuda", dtype=torch.bfloat16, generator=g)
        keys = torch.randn(b, s, r + rope, device="cuda", dtype=torch.bfloat16, generator=g)
        pos = (s - t + torch.arange(t, device="cuda")).expand(b, t)
        w = torch.randn(b, t, h, device="cuda", generator=g)
        idx = indexer_topk(q[..., :32].float(), w, keys[..., :32].float(), pos, k)
        idx[:, :, -3:] = -1  # empty slots must be ignored
        ref = sparse_attention(q.float(), keys.float(), keys[..., :r].float(), idx, 0.1)
        got = sparse_attention(q, keys, keys[..., :r], idx, 0.1, backend="triton")
        err = (got.float() - ref).abs().max().item()
        lines.append(f"check triton vs torch b={b} t={t} h={h} r={r} k={k}: max |diff| {err:.2e} "
                     f"{'OK' if err < 3e-2 else 'MISMATCH'}")  # fmt: skip
    from engram_sdk.model.indexer_triton import index_scores_triton
    from engram_sdk.model.sparse import index_scores, visible

    q = torch.randn(1, 300, 4, 32, device="cuda", dtype=torch.bfloat16, generator=g)
    w = torch.randn(1, 300, 4, device="cuda", generator=g)
    keys = torch.randn(1, 5000, 32, device="cuda", dtype=torch.bfloat16, generator=g)
    pos, kp = (4700 + torch.arange(300, device="cuda"))[None], torch.arange(5000, device="cuda")
    want = index_scores(q.float(), w, keys.float()).masked_fill(~visible(pos, kp), float("-inf"))
    got = index_scores_triton(q, w, keys, pos, kp)
    same_mask = bool((torch.isfinite(got) == torch.isfinite(want)).all())
    err = (got - want)[torch.isfinite(want)].abs().max().item() / want[
        torch.isfinite(want)
    ].abs().max().item()
    lines.append(f"check triton indexer scores vs torch: relative max |diff| {err:.2e} "
                 f"{'OK' if err < 2e-2 and same_mask else 'MISMATCH'}")  # fmt: skip
    return lines
