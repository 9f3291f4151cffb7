"""Long-context GPU benchmark: sparse vs dense prefill, decode cost vs context, batched decode.

    python benchmarks/long_context_gpu.py            # one H200, about 8 minutes
    python benchmarks/long_context_gpu.py --smoke    # CPU or GPU, tiny sizes, seconds
    python benchmarks/long_context_gpu.py --check-only   # the Triton kernel vs torch, GPU

Sections (each under its own time budget; a case predicted to overrun is printed as skipped):

1. **check** (CUDA): the Triton sparse-attention kernel against the torch reference path.
2. **prefill / decode**: for each preset and context, dense vs DSA (top-k 2048): chunked
   prefill tokens/s and peak memory, then decode ms/token on that same cache.
3. **batched decode**: ``generate_batch`` at batch 1, 8, 32 vs transformers'
   ``DeepseekV3ForCausalLM.generate`` on the same config (no Engram, greedy).
4. **training** (CUDA): tokens/s and MFU at 4K, ours vs transformers, as ``model_gpu.py``
   measures them (skip with ``--no-train``).

Every figure is measured in this run; ratios are against the baseline printed beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch


@dataclass
class Plan:
    presets: list[str]
    contexts: list[int]
    topk: int
    prefill_chunk: int
    decode_steps: int
    batches: list[int]
    batch_prompt: int
    batch_new: int
    budget_s: dict[str, float]
    device: str
    backend: str = "torch"
    modes: tuple[str, ...] = ("dense", "sparse")
    train_compile: bool = False
    profile_context: list[int] = field(default_factory=list)
    train_presets: list[str] | None = None  # None: the presets of sections 2-3
    train_profile: bool = False
    train_batch: list[int] = field(default_factory=list)  # ours at these batches too
    profile_decode: bool = False  # per context: wall vs GPU-kernel ms of a decode step
    phases_lean: bool = False  # phases: no tiled/two-pass rows, no single-pass variant rows


def builtin_preset(plan: Plan) -> str:
    """The first built-in (not V4) preset: what the sections past prefill / decode run."""
    for preset in plan.presets:
        if not preset.startswith("v4-"):
            return preset
    raise SystemExit("this section needs a built-in preset in --presets (V4 runs prefill only)")


def plan_for(args: argparse.Namespace) -> Plan:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        return Plan(["tiny", "v4-tiny"], [64, 256], 16, 128, 4, [1, 2], 16, 4,
                    {"prefill": 60, "batch": 60}, device)  # fmt: skip
    contexts = [int(c) for c in args.contexts.split(",")]
    modes = tuple(args.modes.split(","))
    if not set(modes) <= set(THRESHOLD_PATHS) | {"dense"}:
        raise SystemExit(f"--modes must list some of dense, {', '.join(THRESHOLD_PATHS)}, "
                         f"got {args.modes!r}")  # fmt: skip
    return Plan(args.presets.split(","), contexts, 2048, 16384, 16, [1, 8, 32], 512, 64,
                {"prefill": args.prefill_budget, "batch": args.batch_budget}, device,
                modes=modes)  # fmt: skip


THRESHOLD_PATHS = {  # sparse modes: how long prefill chunks select their top-k
    "sparse": "stored",  # the model's default: one pass writes scores, then selects
    "sparse-recompute": "recompute",  # group maxima, recompute + collect, sort-free selection
}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")


def autocast(device: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA: the MoE's grouped-GEMM path runs only under autocast."""
    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fresh(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def build(
    preset: str,
    *,
    topk: int,
    max_len: int,
    device: str,
    engram: bool = True,
    backend: str = "torch",
    threshold_path: str = "recompute",
):
    from engram_sdk.model import build_model, get_preset
    from engram_sdk.model.attention import MLA

    v4 = _sibling("long_context_v4")
    if v4.is_v4(preset):  # DeepSeek-V4 attention: topk 0 = its dense reference
        return v4.build(preset, dense=topk == 0, max_len=max_len, device=device)
    over = dict(tokenizer=None, max_seq_len=max_len, dsa_topk=topk)
    if preset == "tiny":
        over.update(vocab_size=512)
    if not engram:
        over.update(engram_layer_ids=[], hc_mult=1)
    model = build_model(get_preset(preset, **over), device=device, seed=0).eval()
    if device == "cuda":
        model = model.to(torch.bfloat16)
        for m in model.modules():
            if isinstance(m, MLA):
                m.sparse_backend = backend
                m.threshold_path = threshold_path
    return model


# ---- 1. the Triton kernels against the torch path: benchmarks/long_context_checks.py ----


# ---- 2. prefill and decode ----------------------------------------------------------------
def runner(model, chunk: int) -> tuple[Callable, Callable]:
    """(prefill(ids), step(ids)) over one fresh cache, for the built-in model or a V4 one."""
    from engram_sdk.model import ModelCache
    from engram_sdk.model.generate import prefill
    from engram_sdk.model.v4 import V4Transformer

    if isinstance(model, V4Transformer):
        return _sibling("long_context_v4").runner(model, chunk)
    cache = ModelCache()
    return (lambda ids: prefill(model, ids, cache, chunk=chunk)), (lambda ids: model(ids, cache))


def prefill_and_decode(model, ctx: int, plan: Plan) -> dict:
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (1, ctx), device=plan.device)
    fresh(plan.device)
    run_prefill, run_step = runner(model, plan.prefill_chunk)
    with torch.no_grad(), autocast(plan.device):
        sync(plan.device)
        t0 = time.perf_counter()
        run_prefill(ids)
        sync(plan.device)
        prefill_s = time.perf_counter() - t0
        mem = peak_gib(plan.device)
        step = ids[:, -1:]
        run_step(step)  # warm the decode path
        sync(plan.device)
        t0 = time.perf_counter()
        for _ in range(plan.decode_steps):
            run_step(step)
        sync(plan.device)
        decode_ms = (time.perf_counter() - t0) / plan.decode_steps * 1e3
        row = {"prefill_tok_s": ctx / prefill_s, "prefill_s": prefill_s, "peak_gib": mem,
               "decode_ms": decode_ms}  # fmt: skip
        if plan.profile_decode and plan.device == "cuda":
            row.update(_decode_profile(run_step, step))
    return row


def _decode_profile(run_step: Callable, step: torch.Tensor, steps: int = 4) -> dict:
    """Wall and GPU-kernel ms per decode step, and the kernel count: whether a step waits
    on the host (launches) or on the GPU."""
    from torch.profiler import ProfilerActivity, profile

    sync("cuda")
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            run_step(step)
        sync("cuda")
        wall = (time.perf_counter() - t0) / steps * 1e3
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    gpu = sum(e.self_device_time_total for e in events) / 1e3 / steps
    kernels = sum(e.count for e in events) / steps
    top = max(events, key=lambda e: e.self_device_time_total, default=None)
    return {"decode_wall_ms": wall, "decode_gpu_ms": gpu, "decode_kernels": kernels,
            "decode_top_kernel": top.key[:60] if top else ""}  # fmt: skip


def section_prefill(plan: Plan, emit: Callable[[dict], None]) -> None:
    end = time.perf_counter() + plan.budget_s["prefill"]
    groups = [(p, m) for p in plan.presets for m in plan.modes]
    for n, (preset, mode) in enumerate(groups):
        topk = plan.topk if mode != "dense" else 0
        # one budget share per (preset, mode); what a group leaves goes to the next
        deadline = time.perf_counter() + (end - time.perf_counter()) / (len(groups) - n)
        max_len = max(plan.contexts) + max(plan.decode_steps, 17) + 8  # 17: warm-up; 4: profile
        fresh(plan.device)
        model = build(preset, topk=topk, max_len=max_len, device=plan.device,
                      backend=plan.backend, threshold_path=THRESHOLD_PATHS.get(mode, "stored"))  # fmt: skip
        # compile before timing: two chunks (the cached path too); Triton specialises lengths
        # divisible by 16, so decode 17 steps
        warm = replace(plan, decode_steps=17, profile_decode=False)
        v4 = preset.startswith("v4-")  # no Triton to compile: a short warm-up
        warm_ctx = min(max(plan.contexts), 2048 if v4 else 2 * plan.prefill_chunk)
        try:
            prefill_and_decode(model, warm_ctx, warm)
        except Exception as exc:  # report the group's failure, go on with the next group
            emit({"section": "prefill", "preset": preset, "mode": mode, "ctx": warm_ctx,
                  "skipped": f"warm-up failed: {exc!r}"[:300]})  # fmt: skip
            model = None
            continue
        if mode != "dense" and plan.backend == "auto" and not v4:
            try:
                _sibling("long_context_phases").warm_groups(model, plan.topk)
            except Exception as exc:  # only a warm-up: report it and go on
                print(f"warm-up of the threshold kernels failed: {exc!r}"[:300], flush=True)
        last: tuple[int, float] | None = None
        for ctx in plan.contexts:
            row = {"section": "prefill", "preset": preset, "mode": mode, "ctx": ctx}
            if last is not None:  # dense grows ~quadratically past a few K; sparse ~linearly
                power = 2.0 if mode == "dense" or v4 else 1.3  # V4's CSA indexer: O(T²/4)
                predicted = last[1] * (ctx / last[0]) ** power
                if time.perf_counter() + predicted > deadline:
                    emit({**row, "skipped": f"predicted {predicted:.0f} s > budget"})
                    continue
            try:
                r = prefill_and_decode(model, ctx, plan)
                last = (ctx, r["prefill_s"])
                emit({**row, **r})
            except torch.OutOfMemoryError:
                emit({**row, "skipped": "out of memory"})
                break
            except Exception as exc:  # report the case, go on with the next group
                emit({**row, "skipped": f"failed: {exc!r}"[:300]})
                break
        model = None


# ---- 3. batched decode vs transformers ------------------------------------------------------
def section_batched(plan: Plan, emit: Callable[[dict], None]) -> None:
    from engram_sdk.model.generate import generate_batch

    deadline = time.perf_counter() + plan.budget_s["batch"]
    preset = builtin_preset(plan)
    ours = build(preset, topk=0, max_len=plan.batch_prompt + plan.batch_new + 8,
                 device=plan.device, engram=False)  # fmt: skip
    try:
        theirs = _sibling("long_context_batched").hf_model(ours, plan.device)
    except Exception as exc:  # transformers missing or its config changed: report, go on
        theirs = None
        emit({"section": "batch", "note": f"transformers baseline unavailable: {exc!r}"})
    vocab = ours.config.vocab_size

    def run_ours(prompts: torch.Tensor, new: int, graph: bool) -> tuple[float, list[list[int]]]:
        sync(plan.device)
        t0 = time.perf_counter()
        with autocast(plan.device):
            out = generate_batch(ours, [p.tolist() for p in prompts], new, cuda_graph=graph)
        sync(plan.device)
        return time.perf_counter() - t0, out

    def run_theirs(prompts: torch.Tensor, new: int) -> float:
        with torch.no_grad(), autocast(plan.device):
            sync(plan.device)
            t0 = time.perf_counter()
            theirs.generate(
                prompts.to(plan.device), attention_mask=torch.ones_like(prompts).to(plan.device),
                max_new_tokens=new, min_new_tokens=new,
                do_sample=False, pad_token_id=0, eos_token_id=None,
            )  # fmt: skip
            sync(plan.device)
        return time.perf_counter() - t0

    warm = torch.randint(0, vocab, (2, 16))  # first calls pay for lazy initialisation
    run_ours(warm, 4, True)
    if theirs is not None:
        run_theirs(warm, 4)
    for batch in plan.batches:
        if time.perf_counter() > deadline:
            emit({"section": "batch", "batch": batch, "skipped": "budget"})
            continue
        prompts = torch.randint(0, vocab, (batch, plan.batch_prompt))
        row = {"section": "batch", "preset": preset, "batch": batch}
        new = batch * plan.batch_new
        took, graphed = run_ours(prompts, plan.batch_new, True)
        row["ours_tok_s"] = new / took
        took, eager = run_ours(prompts, plan.batch_new, False)
        row["ours_eager_tok_s"] = new / took
        same = sum(
            a == b for g, e in zip(graphed, eager, strict=True) for a, b in zip(g, e, strict=True)
        )
        row["graph_eq_eager"] = same / new  # share of equal tokens (bf16 may flip near-ties)
        if theirs is not None:
            row["hf_tok_s"] = new / run_theirs(prompts, plan.batch_new)
            row["ratio"] = row["ours_tok_s"] / row["hf_tok_s"]
        emit(row)
    if plan.device == "cuda":  # why graph and eager greedy tokens part (see agreement())
        for batch in plan.batches[1:]:
            try:
                note = _sibling("long_context_batched").agreement(
                    ours, vocab, batch=batch, prompt=plan.batch_prompt, new=plan.batch_new
                )
            except Exception as exc:  # report, and go on
                note = f"agreement check failed: {exc!r}"[:300]
            emit({"section": "batch", "note": note})


# ---- 5. one layer's sparse prefill, phase by phase (benchmarks/long_context_phases.py) ------
def _sibling(name: str):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def section_phases(plan: Plan, emit: Callable[[dict], None], context: int) -> list[str]:
    phases = _sibling("long_context_phases")
    try:
        rows = phases.phase_rows(
            builtin_preset(plan), context, plan.prefill_chunk, plan.topk, lean=plan.phases_lean
        )
    except Exception as exc:  # a phase that fails must not stop the benchmark
        emit({"section": "phases", "error": repr(exc)})
        return [f"phases: failed: {exc!r}"]
    for row in rows:
        emit(row)
    fresh(plan.device)
    lines = phases.phase_table(rows)
    if plan.profile_context:  # one whole-model prefill chunk, dense and sparse, profiled
        for mode, topk in (("dense", 0), ("sparse", plan.topk)):
            top = max(plan.profile_context)
            model = build(builtin_preset(plan), topk=topk, max_len=top + plan.prefill_chunk + 2,
                          device=plan.device, backend=plan.backend)  # fmt: skip
            for ctx in plan.profile_context:
                try:
                    table = phases.profile_chunk(model, ctx, plan.prefill_chunk)
                except Exception as exc:  # the profiler must not stop the benchmark
                    table = [f"profile failed: {exc!r}"]
                lines += ["", f"{mode} model: one {plan.prefill_chunk}-token prefill chunk after "
                          f"{ctx} tokens, top CUDA kernels", *table]  # fmt: skip
                fresh(plan.device)
            model = None
            fresh(plan.device)
    return lines


def section_graph_decode(plan: Plan, emit: Callable[[dict], None], contexts: str) -> list[str]:
    """Batch-1 decode, CUDA graph vs eager, dense and DSA (``long_context_decode.py``)."""
    decode = _sibling("long_context_decode")
    ctxs = [int(c) for c in contexts.split(",") if c]
    rows: list[dict] = []
    for mode, topk in (("dense", 0), ("sparse", plan.topk)):
        fresh(plan.device)
        model = build(builtin_preset(plan), topk=topk, max_len=max(ctxs) + 64, device=plan.device,
                      engram=False, backend=plan.backend)  # fmt: skip
        for row in decode.graph_decode_rows(model, mode, ctxs):
            emit(row)
            rows.append(row)
        model = None
    fresh(plan.device)
    lines = decode.graph_decode_table(rows)
    print("\n".join(lines), flush=True)
    return lines


# ---- 4. training throughput (benchmarks/model_gpu.py's measurement, ours vs transformers) ----
def section_train(plan: Plan, emit: Callable[[dict], None]) -> None:
    from engram_sdk.model import get_preset

    model_gpu = _sibling("model_gpu")
    for preset, batch in (("small", 4), ("base", 2)):
        if preset not in (plan.train_presets or plan.presets):
            continue
        cfg = get_preset(preset).model_copy(update={"engram_layer_ids": [], "hc_mult": 1})
        compiled = ("ours-compiled",) if plan.train_compile else ()
        impls = ("hf", "ours", "ours-fused", *(() if plan.train_batch else compiled))
        for r in model_gpu.run(
            f"{preset} (no Engram)", cfg, model_gpu.hf_from_ours(cfg), batch, 4096, 3, impls
        ):
            emit({"section": "train", **r})
        for i, extra in enumerate(plan.train_batch):  # bigger micro-batches, ours only
            last = i == len(plan.train_batch) - 1
            for r in model_gpu.run(f"{preset} (no Engram)", cfg, model_gpu.hf_from_ours(cfg),
                                   extra, 4096, 3, ("ours-fused", *(compiled if last else ()))):  # fmt: skip
                emit({"section": "train", **r})
                if r["impl"] == "ours-fused" and "error" not in r:
                    batch = extra  # the profile below: the largest batch that ran
        if plan.train_profile:
            fresh(plan.device)
            try:
                lines = _sibling("long_context_phases").profile_train_step(cfg, batch, 4096)
            except Exception as exc:  # the profile must not stop the benchmark
                lines = [f"profile failed: {exc!r}"]
            title = (
                f"{preset}, batch {batch}: one training step (ours, fused loss), top CUDA kernels"
            )
            print("\n".join(["", title, *lines]), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CPU is fine)")
    p.add_argument("--presets", default="small,base",
                   help="built-in presets and V4 ones (v4-small: DeepSeek-V4-Flash's "
                        "attention types at a smaller width), comma-separated")  # fmt: skip
    p.add_argument("--contexts", default="1024,8192,32768,131072,524288,1048576")
    p.add_argument(
        "--modes",
        default="dense,sparse",
        help="attention of section 2: dense, sparse (the default stored pass), sparse-recompute",
    )
    p.add_argument("--prefill-budget", type=float, default=240.0, help="seconds for section 2")
    p.add_argument("--batch-budget", type=float, default=70.0, help="seconds for section 3")
    p.add_argument("--check-only", action="store_true", help="only the Triton-vs-torch check")
    p.add_argument("--no-train", action="store_true", help="skip the training section")
    p.add_argument("--no-batch", action="store_true", help="skip the batched-decode section")
    p.add_argument("--profile-decode", action="store_true",
                   help="per context: wall vs GPU-kernel ms of a decode step, kernel count")  # fmt: skip
    p.add_argument("--phases-context", default="131072",
                   help="contexts of the per-phase breakdown, comma-separated (0: none)")  # fmt: skip
    p.add_argument("--phases-only", action="store_true", help="only check + phase breakdown")
    p.add_argument(
        "--phases-lean",
        action="store_true",
        help="phases: recompute rows, the single pass end to end, attention only",
    )
    p.add_argument("--profile-context", default="",
                   help="profile one whole-model prefill chunk after each of these many "
                        "tokens, comma-separated")  # fmt: skip
    p.add_argument("--train-presets", default=None, help="presets of the training section")
    p.add_argument("--train-profile", action="store_true",
                   help="top CUDA kernels of one training step of ours")  # fmt: skip
    p.add_argument("--train-compile", action="store_true",
                   help="training: also ours with torch.compile'd blocks")  # fmt: skip
    p.add_argument("--train-batch", default="",
                   help="training: also ours-fused at these micro-batches, comma-separated "
                        "(ours-compiled at the last only, with --train-compile)")  # fmt: skip
    p.add_argument(
        "--graph-decode",
        default="",
        help="contexts: batch-1 decode through a CUDA graph vs eager, dense and DSA",
    )
    p.add_argument("--out", default=None, help="also write every row as JSON here")
    args = p.parse_args()
    plan = plan_for(args)
    plan.train_compile = args.train_compile
    plan.profile_context = [int(c) for c in args.profile_context.split(",") if c]
    plan.train_presets = args.train_presets.split(",") if args.train_presets else None
    plan.train_profile = args.train_profile
    plan.train_batch = [int(b) for b in args.train_batch.split(",") if b]
    plan.profile_decode = args.profile_decode
    plan.phases_lean = args.phases_lean
    rows: list[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    if plan.device == "cuda":
        from engram_sdk.model.sparse import triton_available

        try:
            checks = _sibling("long_context_checks")
            lines = checks.check_kernel() if triton_available() else ["check: triton not installed"]
        except Exception as exc:  # a kernel that fails to build must not stop the benchmark
            lines = [f"check: triton kernel failed: {exc!r}"]
        plan.backend = "auto" if all(line.endswith("OK") for line in lines) else "torch"
        for line in [*lines, f"sparse backend for the benchmark: {plan.backend}"]:
            print(line, flush=True)
        if plan.backend == "auto":
            try:
                print("\n".join(_sibling("long_context_checks").check_paths()), flush=True)
            except Exception as exc:  # a check must not stop the benchmark
                print(f"check of the threshold paths failed: {exc!r}"[:300], flush=True)
            from engram_sdk.model.indexer_triton import forget_variants

            forget_variants()  # the check's small shapes must not pick the kernels
    if args.check_only:
        return
    phase_lines: list[str] = []
    if plan.device == "cuda" and args.phases_context and plan.backend == "auto":
        for context in (int(c) for c in args.phases_context.split(",") if int(c)):
            lines = section_phases(plan, emit, context)
            print("\n".join(lines), flush=True)
            phase_lines += lines
            plan.profile_context = []  # the whole-model profile once
    if args.phases_only:
        return
    if plan.device == "cuda" and args.graph_decode:
        phase_lines += section_graph_decode(plan, emit, args.graph_decode)
    if any(preset.startswith("v4-") for preset in plan.presets):  # V4: sparse = dense first
        print(_sibling("long_context_v4").check(plan.device), flush=True)
    section_prefill(plan, emit)
    if not args.no_batch:
        section_batched(plan, emit)
    if plan.device == "cuda" and not args.no_train:
        section_train(plan, emit)
    print(_sibling("long_context_report").table(rows))
    print("\n".join(phase_lines))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
