"""GPU benchmark: what a training step waits on when its Engram rows come from pinned DRAM.

    source tools/device_setup.sh && python benchmarks/engram_paper_train_profile.py  # H200, ~3.5 min
    python benchmarks/engram_paper_train_profile.py --smoke                            # CPU, < 1 min

The paper protocol of ``engram_paper_gpu.py`` section 1 (dense ~4B bf16 backbone, one Engram
layer at block 1 whose ``--table-params`` table sits pinned in host memory and, for the
baseline, in GPU memory; real-text sequences of 100-1024 tokens packed into
``--train-tokens`` micro-batches; forward, loss, backward and a plain SGD step of the
backbone, the table frozen in every placement so rows are the only difference).

1. Timed: placements alternate block by block (``--block`` steps, 4) over ``--max-batches``
   micro-batches spread over every length; overhead vs the mean of ``gpu-resident`` and
   ``gpu-again`` (the noise floor), plus the runtime's counters per step: the launching
   thread's time in the runtime before the forward (``prepare``), its wait for rows inside
   the forward (``wait``), a fetch worker's time per fetch, prefetches reused.
2. Profiled: ``--profile-steps`` steps of each placement under ``torch.profiler``; the trace
   summary (``engram_paper_trace.py``) says per step how long the compute stream was busy
   and idle, what ran on other streams, which CUDA calls of the launching thread could
   block it, and the launching thread's annotated phases (prefetch, forward, backward, sgd).

Placements (``--placements``): ``dram-next`` (pinned rows, the next batch prefetched: the
paper figure), ``dram`` (no prefetch), ``dram-in-place`` (the GPU gathers every step's rows
from pinned memory itself, no host work).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from engram_paper_harness import (
    Served,
    interleaved,
    report,
    same_decoded,
    same_logits,
    serve_from_store,
    store_table_name,
    sync,
)
from engram_paper_hot import DECODE_PLACEMENTS, decode_places, gather_micro, hit_lines, warm_text
from engram_paper_parts import (
    SMOKE_VOCAB,
    Micro,
    anon_huge_bytes,
    build_backbone,
    decode_groups,
    dense_config,
    gpu_tables,
    host_copy,
    host_rows_store,
    micro_batches,
    numa_line,
    sequences,
)
from engram_paper_trace import report as trace_report
from engram_paper_trace import summarize

PLACEMENTS = {
    "dram-next": ("pinned dram + next", dict(ahead=True)),
    "dram": ("pinned dram", dict(ahead=False)),
    "dram-in-place": ("dram in place", dict(ahead=False, direct_tokens=1 << 40)),
}


def marked_train_step(p: Served, batches: list[Micro], i: int, lr: float = 1e-6) -> None:
    """``engram_paper_harness.train`` with each host phase annotated for the profiler."""
    from torch.profiler import record_function

    with record_function("step"):
        with record_function("prefetch"):
            if p.ahead and i + 1 < len(batches):
                p.prefetch(batches[i + 1].ids)
        with record_function("forward"):
            logits = p.forward(batches[i].ids)
        with record_function("loss+backward"):
            target = batches[i].targets.to(logits.device, non_blocking=True)
            loss = F.cross_entropy(
                logits.float().flatten(0, 1), target.flatten(), ignore_index=-100
            )
            loss.backward()
        with record_function("sgd"), torch.no_grad():
            for param in p.model.parameters():
                if param.grad is not None:
                    param.add_(param.grad, alpha=-lr)
                    param.grad = None


def profiled(p: Served, batches: list[Micro], steps: int, device: torch.device, folder: Path):
    """The trace summary of ``steps`` training steps of ``p`` (after two untimed ones)."""
    from torch.profiler import ProfilerActivity, profile

    batches = [batches[i % len(batches)] for i in range(steps + 3)]  # the last one: prefetched
    p.activate()
    for i in range(2):
        marked_train_step(p, batches, i)
    p.wait()
    sync(device)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for i in range(2, 2 + steps):
            marked_train_step(p, batches, i)
        p.wait()
        sync(device)
    path = folder / f"{p.name.replace(' ', '_').replace('+', 'plus')}.json"
    prof.export_chrome_trace(str(path))
    return summarize(path, steps)


def counters_line(p: Served) -> str:
    """The runtime's counters per step (prepare, wait) and per fetch."""
    s = p.stats
    steps, fetches = max(s.prepared_steps, 1), max(s.fetches, 1)
    return (
        f"  {p.name}: prepare {s.prepare_seconds / steps * 1e3:.3f} ms/step, wait "
        f"{s.wait_seconds / steps * 1e3:.3f} ms/step, fetch {s.fetch_seconds / fetches * 1e3:.2f} "
        f"ms/fetch (worker), {s.reused_prefetches}/{s.fetches} fetches were prefetches, "
        f"{s.unique_rows / steps:.0f} rows/step"
    )


def decode_phase(places: list[Served], groups: list[Micro], device, new_tokens: int, feed: str):
    """Every placement decodes every group (one CUDA graph per step on a GPU), interleaved;
    the hit counters restart."""
    for p in places:
        p.decoded.clear()
        for table in p.runtime.tables.values() if p.runtime is not None else ():
            table.reset_in_place_hits()
    graphed = device.type == "cuda"
    interleaved(places, "decode", groups, 1, device, new_tokens=new_tokens, graphed=graphed,
                feed=feed)  # fmt: skip


def decode_tables(args, feeds, places, model, store, seqs, pad, device, say) -> list[str]:
    """One decode table per feed: ``places`` and, built afresh for each feed (a cache that
    saw one feed's prefills must not serve the other's), the decode-only placements."""
    keys = [k for k in args.decode_placements.split(",") if k]
    warm_ids = None
    if any(k.startswith("dram-hot") for k in keys):
        warm_ids = warm_text(sum(len(s) for s in seqs), args.warm_tokens)
        warm_ids = warm_ids % SMOKE_VOCAB if args.smoke else warm_ids
    groups = decode_groups(seqs, args.decode_batch, pad, device.type == "cuda")
    mode = "graphed" if device.type == "cuda" else "eager (CPU smoke)"
    tokens = {"decode": sum(len(g.ids) for g in groups) * args.new_tokens}
    log: list[str] = []
    for n, feed in enumerate(feeds):
        extra = decode_places(
            keys, model, store, args.hot_rows, warm_ids, say, places[0], args.warm_rows
        )
        decoders = places + extra
        if args.gather_micro and device.type == "cuda" and n == 0:
            log += micro_lines(decoders, model, store, groups, say)
        decode_phase(decoders, groups, device, args.new_tokens, feed)
        log += report(f"{n + 2}. decode, {mode}, fed {feed}", decoders, tokens)
        for line in hit_lines(decoders):
            say(line)
        equal = same_decoded(decoders)
        say("decode logits bitwise equal: " + ", ".join(f"{k} {v}" for k, v in equal.items()))
        for p in extra:
            p.runtime.detach()  # (its cache's GPU memory goes with it)
    return log


def micro_lines(places: list[Served], model, store, groups: list[Micro], say) -> list[str]:
    """``engram_paper_hot.gather_micro`` on real-text decode steps: the addresses of the 16
    positions before each group's shortest prompt ends (1024 rows each at batch 64)."""
    from engram_sdk.table_runtime.mapped import mapped_view

    device = next(model.parameters()).device
    sets: dict[int, list[torch.Tensor]] = {}
    with torch.no_grad():
        for group in groups:
            shortest = int((group.targets != -100).sum(1).min())
            found = model.engram_addresses(group.ids[:, :shortest].to(device))
            for layer, addresses in found.items():
                for k in range(1, 17):
                    sets.setdefault(layer, []).append(addresses[:, -k].reshape(-1).contiguous())
    lines = []
    for layer, parts in sets.items():
        mapped = mapped_view(store.pinned_rows(store_table_name(layer)), "bfloat16", device)
        if mapped is None:
            continue
        for line in gather_micro(places, mapped, parts):
            say(line)
            lines.append(line)
    return lines


def spread(batches: list[Micro], count: int) -> list[Micro]:
    """At most ``count`` micro-batches taken evenly over all of them (every length)."""
    if len(batches) <= count:
        return batches
    step = len(batches) / count
    return [batches[int(k * step)] for k in range(count)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (< 1 minute)")
    ap.add_argument("--table-params", type=float, default=50e9)
    ap.add_argument("--seqs", type=int, default=512)
    ap.add_argument("--train-tokens", type=int, default=2048)
    ap.add_argument("--max-batches", type=int, default=80, help="timed micro-batches")
    ap.add_argument("--block", type=int, default=4, help="steps per placement in a row")
    ap.add_argument("--profile-steps", type=int, default=6, help="0: no profile")
    ap.add_argument("--graphed-decode", action="store_true", help="also time graphed decoding")
    ap.add_argument(
        "--huge-pages", action="store_true", help="host table in transparent huge pages"
    )
    ap.add_argument("--decode-batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument(
        "--placements", default="dram-next,dram-in-place", help=f"of {','.join(PLACEMENTS)}"
    )
    ap.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    ap.add_argument(
        "--skip-train", action="store_true", help="time decoding only (no train, profile)"
    )
    ap.add_argument(
        "--decode-feed",
        default="greedy",
        help="decode steps fed each argmax (greedy) or the real text after the prompt (text); "
        "both: greedy,text (one table each)",
    )
    ap.add_argument(
        "--decode-placements",
        default="",
        help=f"decode-only placements, of {','.join(DECODE_PLACEMENTS)}",
    )
    ap.add_argument("--hot-rows", type=int, default=1 << 22, help="rows of dram-hot's GPU cache")
    ap.add_argument("--warm-tokens", type=int, default=2_000_000, help="other text warming it")
    ap.add_argument(
        "--warm-rows", type=float, default=0.75, help="share of the cache warmed (the rest learns)"
    )
    ap.add_argument("--gather-micro", action="store_true", help="time the in-place gather alone")
    args = ap.parse_args()
    feeds = args.decode_feed.split(",")
    if set(feeds) - {"greedy", "text"}:
        raise SystemExit(f"--decode-feed: greedy, text or both, got {args.decode_feed!r}")
    unknown = set(args.placements.split(",")) - set(PLACEMENTS)
    if unknown:
        raise SystemExit(f"--placements: unknown {sorted(unknown)}; known: {list(PLACEMENTS)}")
    if args.smoke:
        args.table_params, args.seqs, args.train_tokens = min(args.table_params, 2e5), 6, 300
        args.max_batches, args.profile_steps = min(args.max_batches, 8), min(args.profile_steps, 2)
        args.decode_batch, args.new_tokens = 4, 2
        torch.set_num_threads(1)  # a shared CPU: more threads only spin
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on the GPU machine, or use --smoke")
    from engram_sdk.tokenizer import get_tokenizer

    device = torch.device("cpu" if args.smoke else "cuda")
    log: list[str] = []

    def say(line: str) -> None:
        log.append(line)
        print(line, flush=True)

    start = time.perf_counter()
    seqs = sequences(args.seqs, 100, 130 if args.smoke else 1024)
    pad = get_tokenizer().eot_id
    if args.smoke:
        seqs, pad = [s % SMOKE_VOCAB for s in seqs], pad % SMOKE_VOCAB
    model = build_backbone(dense_config(args.table_params, args.smoke), device)
    tables = gpu_tables(model, device, seed=1)
    rows = sum(t.rows * t.dim for t in tables.values())
    host = {
        store_table_name(layer): host_copy(t.weight, args.huge_pages) for layer, t in tables.items()
    }
    store = host_rows_store(host, pin=device.type == "cuda")
    batches = micro_batches(seqs, args.train_tokens, pad, device.type == "cuda")
    timed = spread(batches, args.max_batches)
    say(
        f"train profile: backbone {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B bf16, "
        f"table {rows / 1e9:.1f}B bf16 parameters in host memory "
        f"({'pinned' if store.registered else 'NOT pinned'}; {anon_huge_bytes() / 1e9:.0f} GB "
        f"of the process in huge pages) and on the GPU; {len(timed)} of "
        f"{len(batches)} micro-batches of <= {args.train_tokens} tokens; set up in "
        f"{time.perf_counter() - start:.0f} s"
    )
    say(numa_line(next(iter(host.values()))))
    places = [
        Served("gpu-resident", model, tables, model),
        Served("gpu-again", model, tables, model),
    ]
    for key in args.placements.split(","):
        name, options = PLACEMENTS[key]
        places.append(serve_from_store(name, model, store, **options))
    same = same_logits(places, timed[0])
    tokens, counters = {}, []
    if not args.skip_train:
        tokens["train"] = sum(b.tokens for b in timed)
        interleaved(places, "train", timed, args.block, device)
        counters = [counters_line(p) for p in places if p.stats is not None]  # training's alone
    if tokens:
        log += report("1. train steps (table frozen in every placement)", places, tokens)
    if args.graphed_decode or args.skip_train:  # each step one CUDA graph replay (on a GPU)
        log += decode_tables(args, feeds, places, model, store, seqs, pad, device, say)
    say("runtime counters of the training steps:")
    for line in counters:
        say(line)
    say("logits bitwise equal: " + ", ".join(f"{k} {v}" for k, v in same.items()))
    if args.out:  # written again at the end; the profile below may fail on some hosts
        Path(args.out).write_text("```\n" + "\n".join(log) + "\n```\n")
    if args.skip_train or args.profile_steps < 1:  # (nothing above depends on the profile)
        say(f"total {time.perf_counter() - start:.0f} s")
        store.close()
        return
    say(f"\nprofiled, {args.profile_steps} steps per placement (torch.profiler)")
    try:
        with tempfile.TemporaryDirectory() as folder:
            summaries = {
                p.name: profiled(p, timed, args.profile_steps, device, Path(folder)) for p in places
            }
        for line in trace_report(summaries, "gpu-resident"):
            say(line)
    except Exception as exc:  # the timed table above stands on its own
        say(f"profile failed: {type(exc).__name__}: {exc}")
    say(f"total {time.perf_counter() - start:.0f} s")
    if args.out:
        Path(args.out).write_text("```\n" + "\n".join(log) + "\n```\n")
    store.close()
    del places, tables, model
    gc.collect()


if __name__ == "__main__":
    main()
