"""Decode at batch 1 through a CUDA graph vs eagerly, dense and DSA (section of
``benchmarks/long_context_gpu.py --graph-decode 8192,131072``).

A decode step of ``small`` is ~800-1100 tiny kernels: eagerly it is host-bound (tens of ms
of launches for 2-4 ms of GPU work). With DSA's decode top-k now free of host-side plans,
the whole step is recorded once (``GraphedStep``) and replayed. For each context: prefill,
copy the cache twice into static caches (capacity = context + steps), then decode the same
tokens through the graph and eagerly: ms/token of each, and how far their logits part
(max |diff|, steps whose argmax differs).
"""

from __future__ import annotations

import time

import torch


def graph_decode_rows(model, mode: str, contexts: list[int], steps: int = 32) -> list[dict]:
    """One row per context: eager and graphed ms/token on static caches, and agreement."""
    rows = []
    for ctx in contexts:
        row: dict = {"section": "graph_decode", "mode": mode, "ctx": ctx}
        try:
            row.update(_one_context(model, ctx, steps))
        except torch.OutOfMemoryError:
            rows.append({**row, "skipped": "out of memory"})
            break
        except Exception as exc:  # recording failed: say why, go on
            row["error"] = repr(exc)[:200]
        rows.append(row)
        torch.cuda.empty_cache()
    return rows


def _one_context(model, ctx: int, steps: int) -> dict:
    from engram_sdk.model import ModelCache
    from engram_sdk.model.batch_cache import stack_caches
    from engram_sdk.model.generate import prefill
    from engram_sdk.model.generate_graph import GraphedStep, graphable

    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (1, ctx), device="cuda")
    forced = torch.randint(0, vocab, (1, steps), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        first = ModelCache()
        prefill(model, ids, first, chunk=16384)
        kw = dict(capacity=ctx + steps + 2, engram_context=model.hasher.context,
                  pad_id=model.hasher.config.pad_id)  # fmt: skip
        graphed, eager = (stack_caches([first], **kw) for _ in range(2))
        del first
        for lc in eager.layers:
            lc.attn.make_static()
        ok = graphable(model, graphed)
        stepper = GraphedStep(model, graphed)
        graph_ms, lg = _timed_steps(stepper.step, forced)
        eager_ms, le = _timed_steps(lambda s: model(s, eager)[:, -1], forced)
    return {"graphable": ok, "graph_ms": graph_ms, "eager_ms": eager_ms,
            "speedup": eager_ms / graph_ms, "max_logit_diff": (lg - le).abs().amax().item(),
            "argmax_differs": int((lg.argmax(-1) != le.argmax(-1)).sum()), "steps": steps}  # fmt: skip


def _timed_steps(step, forced: torch.Tensor) -> tuple[float, torch.Tensor]:
    """ms per step over the steps after the first two (warm-up, recording) → (ms, logits)."""
    out = []
    for i in range(forced.shape[1]):
        if i == 2:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        out.append(step(forced[:, i : i + 1]).float().clone())
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) / (forced.shape[1] - 2) * 1e3
    return ms, torch.stack(out, 1)


def graph_decode_table(rows: list[dict]) -> list[str]:
    """The rows as a short text table."""
    out = ["", "decode at batch 1 on static caches: CUDA graph vs eager (same forced tokens)"]
    out.append(f"{'mode':7} {'ctx':>8} {'graph ms':>9} {'eager ms':>9} {'eager/graph':>12} "
               f"{'max |logit diff|':>17} {'argmax differs':>15}")  # fmt: skip
    for r in rows:
        head = f"{r['mode']:7} {r['ctx']:>8}"
        if "graph_ms" not in r:
            out.append(f"{head} {r.get('skipped') or r.get('error')}")
            continue
        out.append(f"{head} {r['graph_ms']:9.2f} {r['eager_ms']:9.2f} {r['speedup']:11.1f}x "
                   f"{r['max_logit_diff']:17.2e} {r['argmax_differs']:>8}/{r['steps']}")  # fmt: skip
    return out
