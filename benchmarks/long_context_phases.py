"""Where one layer's sparse prefill time goes at a long context, phase by phase (CUDA).

One prefill chunk of ``queries`` tokens at the end of a ``context``-token cache, with the
shapes of a preset's attention layer (random tensors; only the timing is of interest):

- indexer scoring: the fused scoring kernel writing every score of the chunk (tiled), and
  the threshold path's two scoring passes (group maxima; collect at the threshold);
- top-k: the tiled path's ``torch.topk`` merges, and the threshold path's k-th-maximum
  threshold plus the top-k of its candidate buffer;
- gather/attention: the Triton sparse-attention kernel over the chunk's top-k keys;
- dense: fused SDPA of the same chunk against the whole cache (the dense model's attention).

    python benchmarks/long_context_gpu.py --phases-only       # just this table
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _time_ms(fn: Callable[[], object], repeat: int = 3) -> float:
    fn()  # compile / warm up
    _sync()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync()
    return (time.perf_counter() - t0) / repeat * 1e3


def phase_rows(
    preset: str,
    context: int,
    queries: int,
    topk: int,
    *,
    device: str = "cuda",
    tile: int = 65536,
    lean: bool = False,
) -> list[dict]:
    """ms per phase for one layer and one chunk of ``queries`` at ``context`` → rows.

    ``device`` "cpu" runs the kernels in Triton's interpreter (TRITON_INTERPRET=1, tiny
    sizes: a check that the script runs); ``tile``: keys per tile of the tiled path.
    """
    import torch.nn.functional as F
    from engram_sdk.model import get_preset
    from engram_sdk.model.indexer_triton import (
        chosen_variants,
        group_max_triton,
    )
    from engram_sdk.model.sparse import indexer_topk
    from engram_sdk.model.sparse_threshold import (
        stored_group,
        threshold_topk,
    )
    from engram_sdk.model.sparse_triton import sparse_attention_triton
    from torch.nn.attention.bias import causal_lower_right

    c = get_preset(preset)
    dev = device
    bf = torch.bfloat16 if dev == "cuda" else torch.float32
    g = torch.Generator(device=dev).manual_seed(0)
    iq = torch.randn(
        1, queries, c.index_n_heads, c.index_head_dim, device=dev, dtype=bf, generator=g
    )
    w = torch.randn(1, queries, c.index_n_heads, device=dev, generator=g)
    ik = torch.randn(1, context, c.index_head_dim, device=dev, dtype=bf, generator=g)
    pos = (context - queries + torch.arange(queries, device=dev))[None]
    kp = torch.arange(context, device=dev)
    rows: list[dict] = []

    def add(phase: str, path: str, ms: float) -> None:
        rows.append({"section": "phases", "preset": preset, "ctx": context, "queries": queries,
                     "phase": phase, "path": path, "ms": ms})  # fmt: skip

    def timed(fn: Callable[[], object], repeat: int = 3) -> float:
        try:  # a kernel variant that fails to build costs its row, not the table
            return _time_ms(fn, repeat)
        except Exception as exc:
            print(f"phase failed: {exc!r}"[:300], flush=True)
            return float("nan")

    kw = dict(key_pos=kp, tile_elements=2**28 if dev == "cuda" else 2**16)
    if not lean:  # the tiled and two-pass paths (measured in earlier rounds)
        _old_paths(rows, add, timed, (iq, w, ik), pos, kp, topk, tile, kw)

    # recompute-select: maxima only, sort-free k-th, recompute + collect (prefix by a dot),
    # sort-free top-k of the buffer
    group_r = stored_group(context - queries, topk)  # recompute sizes groups as stored does
    maxima_r = group_max_triton(iq, w, ik, pos, kp, group_r)
    recompute_rows(add, timed, (iq, w, ik), pos, kp, group_r, topk, maxima_r, kw)
    del maxima_r

    if not lean:  # the single pass phase by phase, every kernel variant
        _single_pass_rows(rows, add, timed, (iq, w, ik), pos, kp, topk, context, queries, dev)
    add("indexer + top-k", "1 pass, stored (threshold_topk)", timed(
        lambda: threshold_topk(iq, w, ik, pos, topk, path="stored", **kw), 1))  # fmt: skip
    add("indexer + top-k", "indexer_topk (what the model runs)", timed(
        lambda: indexer_topk(iq, w, ik, pos, topk, fused=True), 1))  # fmt: skip
    rows[-1]["chosen"] = "; ".join(f"{k[0]}: {v}" for k, v in chosen_variants().items())
    idx = indexer_topk(iq, w, ik, pos, topk, fused=True)

    # gather / attention, absorbed (latent + rope keys shared by all heads)
    r, rope, h = c.kv_lora_rank, c.qk_rope_head_dim, c.n_heads
    latent = torch.randn(1, context, r + rope, device=dev, dtype=bf, generator=g)
    q = torch.randn(1, queries, h, r + rope, device=dev, dtype=bf, generator=g)
    add("gather/attention", "triton sparse attention",
        timed(lambda: sparse_attention_triton(q, latent, latent[..., :r], idx, 0.1)))  # fmt: skip

    # dense: the same chunk against the whole cache, keys and values expanded per head
    dq, dv = c.qk_nope_head_dim + rope, c.v_head_dim
    qd = torch.randn(1, h, queries, dq, device=dev, dtype=bf, generator=g)
    kd = torch.randn(1, h, context, dq, device=dev, dtype=bf, generator=g)
    vd = torch.randn(1, h, context, dv, device=dev, dtype=bf, generator=g)
    mask = causal_lower_right(queries, context)
    add("dense attention", "fused SDPA (the dense model)",
        timed(lambda: F.scaled_dot_product_attention(qd, kd, vd, attn_mask=mask, scale=0.1)))  # fmt: skip
    vpad = F.pad(vd, (0, dq - dv))  # v padded to the q/k head size: the flash kernel applies
    add("dense attention", "fused SDPA, v padded to q/k size",
        timed(lambda: F.scaled_dot_product_attention(qd, kd, vpad, attn_mask=mask, scale=0.1)))  # fmt: skip
    return rows


def _old_paths(rows, add, timed, part, pos, kp, topk, tile, kw) -> None:
    """Rows of the tiled path and the two-pass threshold path (rescored)."""
    from engram_sdk.model.indexer_triton import (
        chosen_variants,
        collect_triton,
        group_max_triton,
        index_scores_triton,
    )
    from engram_sdk.model.sparse import _merge, indexer_topk
    from engram_sdk.model.sparse_threshold import kth_largest, threshold_group, threshold_topk

    iq, w, ik = part
    queries, context, dev = iq.shape[1], ik.shape[1], iq.device
    # tiled path (what indexer_topk does without threshold): score tiles, topk merges
    chunk = min(queries, max(64, 2**28 // tile))

    def write_scores() -> None:
        for q0 in range(0, queries, chunk):
            for k0 in range(0, context, tile):
                q1, k1 = q0 + chunk, k0 + tile
                index_scores_triton(
                    iq[:, q0:q1], w[:, q0:q1], ik[:, k0:k1], pos[:, q0:q1], kp[k0:k1]
                )

    add("indexer scoring", "tiled: write scores", timed(write_scores))
    scores = index_scores_triton(
        iq[:, :chunk], w[:, :chunk], ik[:, :tile], pos[:, :chunk], kp[:tile]
    )
    best = torch.full((1, chunk, topk), float("-inf"), device=dev)
    best_idx = torch.zeros(1, chunk, topk, dtype=torch.long, device=dev)
    per_tile = timed(lambda: _merge(best, best_idx, scores, 0, topk))
    tiles = -(-queries // chunk) * -(-context // tile)
    add("top-k", "tiled: torch.topk merges", per_tile * tiles)
    add("indexer + top-k", "tiled (indexer_topk)", timed(
        lambda: indexer_topk(iq, w, ik, pos, topk, fused=True, threshold=False), 1))  # fmt: skip

    # threshold path: group maxima, k-th maximum, collect, top-k of the candidates
    group = threshold_group(context - queries, topk)
    add("indexer scoring", f"threshold: group max (g={group})",
        timed(lambda: group_max_triton(iq, w, ik, pos, kp, group)))  # fmt: skip
    add("indexer scoring", "threshold: group max, 8 tiles/program",
        timed(lambda: group_max_triton(iq, w, ik, pos, kp, group, tiles_per_program=8)))  # fmt: skip
    add("indexer scoring", "threshold: group max, heads in one dot",
        timed(lambda: group_max_triton(iq, w, ik, pos, kp, group, stacked=True)))  # fmt: skip
    maxima = group_max_triton(iq, w, ik, pos, kp, group)
    n = maxima.shape[-1]
    add("top-k", "threshold: k-th max (kthvalue)",
        timed(lambda: maxima.kthvalue(n - topk + 1, dim=-1)))  # fmt: skip
    add("top-k", "threshold: k-th max (least of top-k)",
        timed(lambda: kth_largest(maxima, topk, sort_free=False)))  # fmt: skip
    tau = kth_largest(maxima, topk, sort_free=False)
    add("indexer scoring", "threshold: collect",
        timed(lambda: collect_triton(iq, w, ik, pos, kp, tau, 4 * topk)))  # fmt: skip
    add("indexer scoring", "threshold: collect, 8 tiles/program",
        timed(lambda: collect_triton(iq, w, ik, pos, kp, tau, 4 * topk, tiles_per_program=8)))  # fmt: skip
    add("indexer scoring", "threshold: collect, key atomics",
        timed(lambda: collect_triton(iq, w, ik, pos, kp, tau, 4 * topk, per_key=True)))  # fmt: skip
    cand, _, count = collect_triton(iq, w, ik, pos, kp, tau, 4 * topk)
    add(
        "top-k",
        "threshold: top-k of candidates",
        timed(lambda: cand.topk(topk, dim=-1, sorted=False)),
    )
    rows[-1]["candidates_mean"] = count.float().mean().item()
    rows[-1]["overflow_rows"] = int((count > 4 * topk).sum())
    add("indexer + top-k", "threshold, rescored (threshold_topk)", timed(
        lambda: threshold_topk(iq, w, ik, pos, topk, path="rescored", **kw), 1))  # fmt: skip
    rows[-1]["chosen"] = "; ".join(f"{k[0]}: {v}" for k, v in chosen_variants().items())


def _single_pass_rows(rows, add, timed, tensors, pos, kp, topk, context, queries, dev) -> None:
    """Rows of the stored single pass, one per kernel variant and phase."""
    from engram_sdk.model.indexer_stored import (
        SCORE_VARIANTS,
        SELECT_VARIANTS,
        scores_and_group_max_triton,
        select_groups_triton,
        select_triton,
    )
    from engram_sdk.model.sparse_threshold import kth_largest, stored_group

    iq, w, ik = tensors
    # single pass: scores written once with the group maxima, candidates selected from memory;
    # timed on one query chunk of the size threshold_topk uses, times the chunks in the table
    part = min(queries, max(64, 2**30 // context) if dev == "cuda" else queries)
    times = -(-queries // part)
    group = stored_group(context - queries, topk)
    sargs = (iq[:, :part], w[:, :part], ik, pos[:, :part], kp, group)
    for name, (bt, bs, nw, tp, st) in SCORE_VARIANTS.items():  # as fastest() picks one
        add("indexer scoring", f"1 pass: scores+max g={group} {name}", times * timed(
            lambda bt=bt, bs=bs, nw=nw, tp=tp, st=st: scores_and_group_max_triton(
                *sargs, block_t=bt, num_warps=nw, block_s=bs, tiles_per_program=tp,
                stages=st)))  # fmt: skip
    written, maxima_w = scores_and_group_max_triton(*sargs)
    tau_w = kth_largest(maxima_w, topk, sort_free=False)
    for name, (bl, nw) in SELECT_VARIANTS.items():
        add("top-k", f"1 pass: select >= τ, {name}", times * timed(
            lambda bl=bl, nw=nw: select_triton(written, tau_w, 4 * topk, bl, nw)))  # fmt: skip
        add("top-k", f"1 pass: live groups, {name}", times * timed(
            lambda bl=bl, nw=nw: select_groups_triton(written, maxima_w, tau_w, 4 * topk, group,
                                                      bl, nw)))  # fmt: skip
    _, _, count_w = select_triton(written, tau_w, 4 * topk)
    rows[-6]["candidates_mean"] = count_w.float().mean().item()
    rows[-6]["overflow_rows"] = int((count_w > 4 * topk).sum()) * times
    add("top-k", "1 pass: k-th max",
        times * timed(lambda: kth_largest(maxima_w, topk, sort_free=False)))  # fmt: skip
    cand_w, _, _ = select_triton(written, tau_w, 4 * topk)
    written = None  # 4 GiB on the GPU: freed before the next rows
    add("top-k", "1 pass: top-k of candidates",
        times * timed(lambda: cand_w.topk(topk, dim=-1, sorted=False)))  # fmt: skip


def recompute_rows(add, timed, part, pos, kp, group, topk, maxima, kw) -> None:
    """Phase rows of the recompute-select path, each beside the step it replaces."""
    from engram_sdk.model.indexer_heads4 import group_max_heads4_triton
    from engram_sdk.model.indexer_recompute import (
        COLLECT_VARIANTS,
        HEADS4_VARIANTS,
        collect_prefix_dot_triton,
    )
    from engram_sdk.model.indexer_triton import chosen_variants, collect_triton
    from engram_sdk.model.sparse import EMPTY
    from engram_sdk.model.sparse_select import kth_largest_triton, topk_pick_triton
    from engram_sdk.model.sparse_threshold import _pick, threshold_topk

    if part[0].shape[2] <= 4:
        for name, v in HEADS4_VARIANTS.items():
            add("indexer scoring", f"recompute: group max, 4 heads held, {name}", timed(
                lambda v=v: group_max_heads4_triton(
                    *part, pos, kp, group, block_t=v[0], tiles_per_program=v[1],
                    stages=v[2], num_warps=v[3], skip_full=v[4])))  # fmt: skip
    add("top-k", f"recompute: groups of {group} keys, {maxima.shape[-1]} maxima", float("nan"))
    add("top-k", "recompute: k-th max, torch.topk (old)",
        timed(lambda: maxima.topk(topk, dim=-1, sorted=False).values.amin(-1)))  # fmt: skip
    if maxima.shape[-1] <= 16384:
        add(
            "top-k",
            "recompute: k-th max, sort-free",
            timed(lambda: kth_largest_triton(maxima, topk)),
        )
    tau = kth_largest_triton(maxima, topk) if maxima.shape[-1] <= 16384 else (
        maxima.topk(topk, dim=-1, sorted=False).values.amin(-1))  # fmt: skip
    add("indexer scoring", "recompute: collect, scan (old)",
        timed(lambda: collect_triton(*part, pos, kp, tau, 4 * topk)))  # fmt: skip
    for name, (dot, tiles, warps) in COLLECT_VARIANTS.items():
        if dot:
            add("indexer scoring", f"recompute: collect, {name}", timed(
                lambda tiles=tiles, warps=warps: collect_prefix_dot_triton(
                    *part, pos, kp, tau, 4 * topk, tiles_per_program=tiles, num_warps=warps)))  # fmt: skip
    if part[0].shape[2] <= 4:
        from engram_sdk.model.indexer_heads4 import collect_heads4_triton
        from engram_sdk.model.indexer_recompute import COLLECT_HEADS4_VARIANTS

        for name, v in COLLECT_HEADS4_VARIANTS.items():
            add("indexer scoring", f"recompute: collect, 4 heads held, {name}", timed(
                lambda v=v: collect_heads4_triton(
                    *part, pos, kp, tau, 4 * topk, prefix_dot=v[0], tiles_per_program=v[1],
                    num_warps=v[2], skip_full=v[3])))  # fmt: skip
    if part[0].shape[2] <= 4:
        from engram_sdk.model.indexer_recompute import REGION_VARIANTS
        from engram_sdk.model.indexer_regions import collect_regions_triton

        for name, v in REGION_VARIANTS.items():
            add("indexer scoring", f"recompute: collect by key ranges, {name}", timed(
                lambda v=v: collect_regions_triton(
                    *part, pos, kp, tau, 4 * topk, regions=v[0], skip_full=v[1],
                    prefix_dot=v[2])))  # fmt: skip
        cand_r, _, count_r = collect_regions_triton(*part, pos, kp, tau, 4 * topk)
        over = int((count_r > cand_r.shape[-1]).sum())
        del cand_r
        add("top-k", f"recompute: key ranges (64): {over} rows overflowed a range", float("nan"))
    cand, cand_idx, count = collect_triton(*part, pos, kp, tau, 4 * topk)
    add("top-k", "recompute: top-k of buffer, torch.topk (old)",
        timed(lambda: _pick(cand, cand_idx, topk)))  # fmt: skip
    add("top-k", "recompute: top-k of buffer, sort-free",
        timed(lambda: topk_pick_triton(cand, cand_idx, topk, EMPTY)))  # fmt: skip
    add("indexer + top-k", "recompute (threshold_topk)", timed(
        lambda: threshold_topk(*part, pos, topk, path="recompute", **kw), 1))  # fmt: skip
    rows_chosen = {k[0]: v for k, v in chosen_variants().items() if "recompute" in k[0]}
    add_note = "; ".join(f"{k}: {v}" for k, v in rows_chosen.items())
    rows_over = int((count > 4 * topk).sum())
    add("top-k", f"recompute: {count.float().mean():.0f} candidates/query, {rows_over} overflowed",
        float("nan"))  # fmt: skip
    add("top-k", f"recompute variants used: {add_note}", float("nan"))


def phase_table(rows: list[dict]) -> list[str]:
    """The rows as a short text table."""
    if not rows:
        return []
    r0 = rows[0]
    out = ["", f"one layer, one chunk of {r0['queries']} queries at context {r0['ctx']} "
           f"({r0['preset']}): ms per phase"]  # fmt: skip
    out.append(f"{'phase':18} {'path':36} {'ms':>9}")
    for r in rows:
        extra = ""
        if "candidates_mean" in r:
            extra = (
                f"  ({r['candidates_mean']:.0f} candidates/query, {r['overflow_rows']} overflowed)"
            )
        if "chosen" in r:
            extra = f"  (variants used: {r['chosen']})"
        out.append(f"{r['phase']:18} {r['path']:36} {r['ms']:9.2f}{extra}")
    return out


def profile_chunk(model, context: int, chunk: int, top: int = 12) -> list[str]:
    """Top CUDA kernels of one prefill chunk of ``model`` after ``context`` tokens → lines.

    The whole model's chunk (attention, indexer, MoE, norms...), so the share of attention in
    a prefill step is visible; ``model`` runs under bf16 autocast as in the prefill section.
    """
    from engram_sdk.model import ModelCache
    from engram_sdk.model.generate import prefill
    from torch.profiler import ProfilerActivity, profile

    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (1, context + chunk), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        prefill(model, ids, ModelCache(), chunk=chunk)  # once unprofiled: kernels compiled
        cache = ModelCache()
        prefill(model, ids[:, :context], cache, chunk=chunk)
        _sync()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            model(ids[:, context:], cache)
            _sync()
            wall = (time.perf_counter() - t0) * 1e3
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    total = sum(e.self_device_time_total for e in events) / 1e3
    out = [f"{'kernel (self CUDA time)':70} {'ms':>8} {'calls':>6}"]
    for e in events[:top]:
        out.append(f"{e.key[:70]:70} {e.self_device_time_total / 1e3:8.2f} {e.count:6d}")
    out.append(f"{'all kernels':70} {total:8.2f}")
    out.append(f"{'wall time of the chunk (profiled)':70} {wall:8.2f}")
    return out


def profile_train_step(cfg, batch: int, seq: int, top: int = 14) -> list[str]:
    """Top CUDA kernels of one training step of our model (fused loss, AdamW, bf16 autocast)."""
    from engram_sdk.model import build_model
    from engram_sdk.model.loss import lm_loss
    from torch.profiler import ProfilerActivity, profile

    model = build_model(cfg, device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq + 1), device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = lm_loss(model, ids[:, :-1], ids[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    _sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        _sync()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    total = sum(e.self_device_time_total for e in events) / 1e3
    out = [f"{'kernel (self CUDA time)':70} {'ms':>8} {'calls':>6}"]
    for e in events[:top]:
        out.append(f"{e.key[:70]:70} {e.self_device_time_total / 1e3:8.2f} {e.count:6d}")
    out.append(f"{'all kernels':70} {total:8.2f}")
    shares: dict[str, float] = {}
    for e in events:
        kind = kernel_kind(e.key)
        shares[kind] = shares.get(kind, 0.0) + e.self_device_time_total / 1e3
    out.append("by kind: " + ", ".join(
        f"{k} {v:.1f} ms ({v / total:.0%})" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])))  # fmt: skip
    return out


KERNEL_KINDS = (  # (kind, name fragments), first match wins
    ("attention", ("flash", "fmha", "sdpa", "attention")),
    ("optimizer", ("multi_tensor_apply", "adam")),
    ("grouped GEMM", ("enable_3x_kernel_for_sm9x", "grouped")),
    ("GEMM", ("gemm", "nvjet", "cutlass", "xmma", "matmul")),
    ("copy/cast", ("copy", "memcpy", "memset", "catarray")),
    ("softmax/loss", ("softmax", "_ce_rows", "log_softmax", "nll")),
    ("gather/scatter/sort", ("gather", "scatter", "index", "sort", "topk", "radix")),
    ("reduction", ("reduce",)),
    ("elementwise", ("elementwise", "triton_")),
)


def kernel_kind(name: str) -> str:
    """A coarse kind of a CUDA kernel from its name (for the profile's summary line)."""
    low = name.lower()
    for kind, parts in KERNEL_KINDS:
        if any(p in low for p in parts):
            return kind
    return "other"


def warm_groups(model, topk: int) -> None:
    """Compile the threshold kernels (the variants already picked) for every group size.

    The group size is a compile-time constant that grows with the keys seen; without this a
    first use at 128K, 512K or 1M would compile inside that context's timing.
    """
    from engram_sdk.model.indexer_stored import select, stored_scores
    from engram_sdk.model.sparse_threshold import (
        THRESHOLD_MAX_GROUP,
        _collect,
        _group_maxima,
        kth_largest,
    )

    cfg = model.config
    dev, bf = "cuda", torch.bfloat16
    q = torch.randn(1, 64, cfg.index_n_heads, cfg.index_head_dim, device=dev, dtype=bf)
    w = torch.randn(1, 64, cfg.index_n_heads, device=dev)
    keys = torch.randn(1, 16384, cfg.index_head_dim, device=dev, dtype=bf)
    pos = (16384 - 64 + torch.arange(64, device=dev))[None]
    kp = torch.arange(16384, device=dev)
    # the single pass's kernel variants are picked (by timing) on a full-size chunk first
    big = torch.randn(1, 2048, cfg.index_n_heads, cfg.index_head_dim, device=dev, dtype=bf)
    big_w = torch.randn(1, 2048, cfg.index_n_heads, device=dev)
    big_pos = (65536 - 2048 + torch.arange(2048, device=dev))[None]
    big_keys = torch.randn(1, 65536, cfg.index_head_dim, device=dev, dtype=bf)
    scores, maxima = stored_scores(
        big, big_w, big_keys, big_pos, torch.arange(65536, device=dev), 16
    )
    select(scores, kth_largest(maxima, topk), 4 * topk, maxima, 16)
    del scores, maxima
    group = 2
    while group <= THRESHOLD_MAX_GROUP:
        maxima = _group_maxima((q, w, keys), pos, kp, group)
        tau = kth_largest(maxima, min(topk, maxima.shape[-1]))
        _collect((q, w, keys), pos, kp, tau, 4 * topk)
        scores, maxima = stored_scores(q, w, keys, pos, kp, group)
        select(scores, kth_largest(maxima, min(topk, maxima.shape[-1])), 4 * topk, maxima, group)
        group *= 2
    _sync()
