"""The text tables of ``benchmarks/long_context_gpu.py`` (prefill/decode, batched decode, training)."""

from __future__ import annotations


def table(rows: list[dict]) -> str:
    out = ["", "prefill (chunked) and decode on the same cache"]
    out.append(f"{'preset':7} {'mode':13} {'ctx':>8} {'prefill tok/s':>14} {'peak GiB':>9} "
               f"{'decode ms/tok':>14} {'sparse/dense prefill':>21} {'µs/token':>9}")  # fmt: skip
    dense = {
        (r["preset"], r["ctx"]): r for r in rows if r.get("mode") == "dense" and "prefill_s" in r
    }
    for r in rows:
        if r.get("section") != "prefill":
            continue
        head = f"{r['preset']:7} {r['mode']:13} {r['ctx']:>8}"
        if "skipped" in r:
            out.append(f"{head} skipped: {r['skipped']}")
            continue
        base = dense.get((r["preset"], r["ctx"]))
        ratio = (
            f"{r['prefill_tok_s'] / base['prefill_tok_s']:.2f}x"
            if base and r["mode"] != "dense"
            else ""
        )
        out.append(
            f"{head} {r['prefill_tok_s']:14,.0f} {r['peak_gib']:9.2f} {r['decode_ms']:14.2f} {ratio:>21}"
            f" {1e6 / r['prefill_tok_s']:9.2f}"
        )
    out += growth_lines(rows)
    out += path_lines(rows)
    for r in rows:
        if "decode_gpu_ms" in r:
            out.append(f"decode step {r['mode']} {r['ctx']}: wall {r['decode_wall_ms']:.2f} ms, "
                       f"GPU kernels {r['decode_gpu_ms']:.2f} ms in {r['decode_kernels']:.0f} "
                       f"kernels (top: {r['decode_top_kernel']})")  # fmt: skip
    out += ["", "batched greedy decode (prompt + new tokens, tokens/s of new tokens)"]
    out.append(f"{'batch':>5} {'ours tok/s':>11} {'ours eager':>11} {'transformers':>13} "
               f"{'ours/hf':>8} {'graph=eager':>12}")  # fmt: skip
    for r in rows:
        if r.get("section") == "batch" and "ours_tok_s" in r:
            hf = r.get("hf_tok_s")
            theirs = f"{hf:,.1f}" if hf else "n/a"
            ratio = f"{r['ratio']:.2f}x" if hf else ""
            out.append(f"{r['batch']:>5} {r['ours_tok_s']:11,.1f} {r['ours_eager_tok_s']:11,.1f} "
                       f"{theirs:>13} {ratio:>8} {r['graph_eq_eager']:12.1%}")  # fmt: skip
        elif r.get("section") == "batch":
            out.append(f"      {r.get('skipped') or r.get('note')}")
    out += ["", "training, seq 4096, bf16 autocast (MFU over 989 TFLOP/s)"]
    for r in rows:
        if r.get("section") == "train":
            if "error" in r:
                out.append(f"{r['config']:22} {r['impl']:13} b{r['batch']:<3} {r['error']}")
            else:
                out.append(f"{r['config']:22} {r['impl']:13} b{r['batch']:<3} "
                           f"{r['train_tok_s']:12,.0f} tok/s "
                           f"MFU {r['mfu_train']:6.1%}  peak {r['peak_gib']:.1f} GiB")  # fmt: skip
    return "\n".join(out)


def growth_lines(rows: list[dict], from_ctx: int = 32768) -> list[str]:
    """Per-token prefill cost fitted as ``a + b · keys`` from ``from_ctx`` on (least squares).

    A prefill of n tokens sees n/2 keys per token on average; ``a`` is the part that does not
    grow with the context (projections, MoE, sparse attention over k keys), ``b`` the part
    that does (dense attention, or the indexer's O(S) scoring). Prefill cost is linear in
    n exactly when ``b · n/2`` stays small against ``a``.
    """
    out = []
    for key in sorted({(r["preset"], r["mode"]) for r in rows if r.get("section") == "prefill"}):
        pts = [
            (r["ctx"] / 2 / 1024, 1e6 / r["prefill_tok_s"])
            for r in rows
            if r.get("section") == "prefill" and (r["preset"], r["mode"]) == key
            and "prefill_tok_s" in r and r["ctx"] >= from_ctx
        ]  # fmt: skip
        if len(pts) < 2:
            continue
        n = len(pts)
        mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        b = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0
        a = my - b * mx
        top = max(x for x, _ in pts)
        out.append(f"{key[0]} {key[1]}: µs/token ≈ {a:.2f} + {b * 1000:.2f} per 1M keys seen "
                   f"(fit on ctx >= {from_ctx}); at {2 * top:.0f}K the growing part is "
                   f"{b * top / (a + b * top):.0%}")  # fmt: skip
    return ["", *out] if out else []


def path_lines(rows: list[dict]) -> list[str]:
    """Prefill of the recompute-select path ("sparse-recompute") against the stored single
    pass ("sparse", the model's default) at each context both ran."""
    by = {
        (r["preset"], r["mode"], r["ctx"]): r["prefill_tok_s"]
        for r in rows
        if r.get("section") == "prefill" and "prefill_tok_s" in r
    }
    out = [
        f"{p} {ctx}: recompute-select / stored single pass = {tok / by[(p, 'sparse', ctx)]:.2f}x"
        for (p, mode, ctx), tok in by.items()
        if mode == "sparse-recompute" and (p, "sparse", ctx) in by
    ]
    return ["", *out] if out else []
