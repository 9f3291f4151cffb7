"""GPU benchmark: where a decode step's table overhead comes from, eager and as one CUDA graph.

    source tools/device_setup.sh && python benchmarks/engram_paper_decode.py   # one H200, ~3 min
    python benchmarks/engram_paper_decode.py --smoke                             # CPU, eager only

The backbone of ``engram_paper_gpu.py`` (dense ~4B, bf16, one Engram layer at block 1) with
a ``--table-params`` table (default 1B parameters, 2 GB), decoding batches of
``--decode-batch`` real-text prompts for ``--new-tokens`` greedy tokens each. Placements:

- eager (today's decode loop: host token ids, one Python-launched step per token):
  the GPU-resident rows twice (``gpu-again`` shows the noise floor), ``dram://`` pinned
  (the GPU gathers rows in place over PCIe), ``dram://`` staged (``direct_tokens=0``:
  hashed on a side stream, gathered on the host, copied), ``shards://`` in the page cache,
  and the same files mapped back to back and registered with CUDA (``shards files pinned``,
  ``stores/pinned_files.py``: the GPU reads the page cache in place where that works);
- graphed (``engram_sdk.table_runtime.graph``: the step recorded once as a CUDA graph;
  ids still go through the host every step, as generation samples them): GPU-resident
  twice, ``dram://`` pinned (gathered in place inside the graph), ``shards://`` (rows
  staged by the host into a fixed pinned buffer before each replay, copied inside it) and
  ``shards files pinned`` (in place if registered, else staged through the mapping).

Placements alternate block by block (one block = one prompt batch); each block's prefill is
untimed. ``runtime ms/step`` is the time the stepping thread spent in the table runtime per
step (preparing fetches, fetching small steps itself, waiting for rows). Logits after the
last step are compared bitwise with the first placement of the same mode.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from engram_paper_parts import (
    SMOKE_VOCAB,
    build_backbone,
    decode_groups,
    dense_config,
    gpu_tables,
    host_copy,
    write_rows,
)
from engram_paper_parts import sequences as text_sequences

from engram_sdk.table_runtime import attach_tables, table_name


@dataclass
class Place:
    """One placement: how to step the model, and what its steps took."""

    name: str
    tables: dict
    step: object  # the model itself or a TableRuntime
    graphed: bool
    stats: object = None
    seconds: list[float] = field(default_factory=list)
    runtime_seconds: float = 0.0
    steps: int = 0
    last: list[torch.Tensor] = field(default_factory=list)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def runtime_seconds(place: Place) -> float:
    s = place.stats
    return 0.0 if s is None else s.prepare_seconds + s.wait_seconds


def prefill(model, place: Place, prompt: torch.Tensor):
    """The prompt in 256-token chunks (untimed); last-position logits and the cache."""
    from engram_sdk.model import ModelCache

    cache = ModelCache()
    for start in range(0, prompt.shape[1], 256):
        logits = place.step(prompt[:, start : start + 256], cache)[:, -1]
    return logits, cache


def eager_block(model, place: Place, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """``new_tokens`` eager steps fed host ids, as generation feeds them; timed."""
    device = next(model.parameters()).device
    with torch.no_grad():
        logits, cache = prefill(model, place, prompt)
        sync(device)
        before, start = runtime_seconds(place), time.perf_counter()
        for _ in range(new_tokens):
            token = logits.argmax(-1, keepdim=True).cpu()
            logits = place.step(token, cache)[:, -1]
        sync(device)
    place.seconds.append(time.perf_counter() - start)
    place.runtime_seconds += runtime_seconds(place) - before
    place.steps += new_tokens
    return logits


def graphed_block(model, place: Place, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Two steps to warm up and record, then ``new_tokens`` replays timed (device ids)."""
    seconds, logits = graphed_steps(model, place.step, prompt, new_tokens, place)
    place.seconds.append(seconds)
    place.steps += new_tokens
    return logits


def graphed_steps(
    model,
    step,
    prompt: torch.Tensor,
    new_tokens: int,
    place: Place | None = None,
    feed: torch.Tensor | None = None,
) -> tuple[float, torch.Tensor]:
    """Seconds of ``new_tokens`` replays of ``step`` (the model or its TableRuntime) recorded
    as one CUDA graph after the prompt (prefill, warm-up and recording untimed); last logits.
    ``place``: adds the runtime's time during the timed replays to its ``runtime_seconds``.
    ``feed`` (B, >= new_tokens + 2) host ids: fed step by step instead of each argmax."""
    from engram_sdk.model import ModelCache
    from engram_sdk.model.batch_cache import stack_caches

    from engram_sdk.table_runtime.graph import graph_decode

    device = next(model.parameters()).device
    with torch.no_grad():
        cache = ModelCache()
        for start in range(0, prompt.shape[1], 256):
            logits = step(prompt[:, start : start + 256], cache)[:, -1]
        cache = stack_caches(
            [cache],
            capacity=cache.length + new_tokens + 3,
            engram_context=model.hasher.context,
            pad_id=model.hasher.config.pad_id,
        )
        graph = graph_decode(step, cache)

        def next_ids(k: int, logits: torch.Tensor) -> torch.Tensor:
            if feed is not None:
                return feed[:, k : k + 1]
            return logits.argmax(-1, keepdim=True).cpu()

        try:
            for k in range(2):
                logits = graph.step(next_ids(k, logits))
            sync(device)
            before = runtime_seconds(place) if place is not None else 0.0
            start = time.perf_counter()
            for k in range(new_tokens):  # ids through the host, as generation samples them
                logits = graph.step(next_ids(2 + k, logits))
            sync(device)
            seconds = time.perf_counter() - start
            if place is not None:
                place.runtime_seconds += runtime_seconds(place) - before
        finally:
            graph.finish()  # staged tables fetch again, whatever happened
    return seconds, logits.clone()


def run_blocks(model, places: list[Place], prompts: list[torch.Tensor], args) -> None:
    """Every placement decodes every prompt batch ``--repeats`` times; rotation per block."""
    for p in places:  # warm-up: kernels, allocator, first reads
        activate(model, p)
        block = graphed_block if p.graphed else eager_block
        block(model, p, prompts[0], 2)
        p.seconds.clear()
        p.steps, p.runtime_seconds = 0, 0.0
    blocks = [prompt for _ in range(args.repeats) for prompt in prompts]
    for b, prompt in enumerate(blocks):
        for p in places[b % len(places) :] + places[: b % len(places)]:
            activate(model, p)
            block = graphed_block if p.graphed else eager_block
            logits = block(model, p, prompt, args.new_tokens)
            if b < len(prompts):
                p.last.append(logits)


def activate(model, place: Place) -> None:
    for layer, table in place.tables.items():
        model.set_engram_table(layer, table)


def report(title: str, places: list[Place], tokens_per_block: int) -> list[str]:
    base_places = [p for p in places if p.name.startswith("gpu")]
    base = [statistics.fmean(t) for t in zip(*(g.seconds for g in base_places), strict=True)]
    lines = [
        f"\n{title}",
        f"{'placement':26} {'tok/s':>8} {'ms/step':>8} {'overhead':>30} {'runtime ms/step':>16} "
        "bitwise",
    ]
    first = places[0]
    for p in places:
        ratios = sorted(a / b - 1 for a, b in zip(p.seconds, base, strict=True))
        q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
        total = sum(p.seconds) / sum(base) - 1
        cell = f"{total * 100:+.2f}% ({statistics.median(ratios) * 100:+.2f}% [{q1 * 100:+.1f},{q3 * 100:+.1f}])"
        same = all(torch.equal(a, b) for a, b in zip(p.last, first.last, strict=True))
        rt = f"{p.runtime_seconds / max(p.steps, 1) * 1e3:.3f}" if p.stats is not None else "-"
        lines.append(
            f"{p.name:26} {tokens_per_block * len(p.seconds) / sum(p.seconds):8.0f} "
            f"{sum(p.seconds) / max(p.steps, 1) * 1e3:8.2f} {cell:>30} {rt:>16} {same}"
        )
    lines.append(
        "overhead: total time vs the mean of the gpu placements of the same mode, same blocks; "
        "in brackets the median per-block ratio [25th, 75th percentile]; gpu-again = noise floor"
    )
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on CPU, eager only")
    ap.add_argument("--table-params", type=float, default=1e9)
    ap.add_argument("--seqs", type=int, default=192)
    ap.add_argument("--decode-batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--modes", default="eager,graphed")
    ap.add_argument("--folder", default="/tmp/engram-decode")
    ap.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    args = ap.parse_args()
    if args.smoke:
        args.table_params, args.seqs, args.decode_batch = min(args.table_params, 1e5), 6, 3
        args.new_tokens, args.modes = 3, "eager"
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on the GPU machine, or use --smoke")
    from engram_sdk.stores import open_store
    from engram_sdk.stores.pinned_files import PinnedFiles

    from engram_sdk.tokenizer import get_tokenizer

    t0 = time.perf_counter()
    device = torch.device("cpu" if args.smoke else "cuda")
    cuda = device.type == "cuda"
    pad = get_tokenizer().eot_id
    seqs = text_sequences(args.seqs, 100, 130 if args.smoke else 1024)
    if args.smoke:
        seqs, pad = [s % SMOKE_VOCAB for s in seqs], pad % SMOKE_VOCAB
    prompts = []
    for group in decode_groups(seqs, args.decode_batch, pad, cuda):
        prompts.append(group.ids[:, : int((group.targets != -100).sum(1).min())])
    model = build_backbone(dense_config(args.table_params, args.smoke), device).eval()
    tables = gpu_tables(model, device, seed=3)
    host = {table_name(layer): host_copy(tab.weight) for layer, tab in tables.items()}
    gb = sum(h.numel() for h in host.values()) * 2 / 1e9
    shutil.rmtree(args.folder, ignore_errors=True)
    dram = open_store("dram://", "a", pinned=cuda)
    shards = open_store(f"shards://{args.folder}/shards", "w", durable=False)
    for store in (dram, shards):
        with store.transaction():
            write_rows(store, host)
    files = PinnedFiles(open_store(f"shards://{args.folder}/shards", "r"), pin=cuda)
    log = [
        f"decode: {gb:.1f} GB table, {len(prompts)} batches of {args.decode_batch} prompts "
        f"({min(p.shape[1] for p in prompts)}-{max(p.shape[1] for p in prompts)} tokens), "
        f"{args.new_tokens} new tokens x {args.repeats} repeats; set up in "
        f"{time.perf_counter() - t0:.0f} s"
    ]
    log.append(f"shards files registered with CUDA (read in place): {all(files.pinned.values())}")
    print("\n".join(log[-2:]), flush=True)

    def served(name: str, store, graphed: bool, **options) -> Place:
        rt = attach_tables(model, store, export=False, **options)
        return Place(name, dict(rt.tables), rt, graphed, rt.stats)  # activate() swaps tables

    modes = args.modes.split(",")
    for mode in modes:
        graphed = mode == "graphed"
        places = [Place("gpu-resident", tables, model, graphed)]
        places.append(Place("gpu-again", tables, model, graphed))
        places.append(served("dram pinned (in place)", dram, graphed))
        if not graphed:
            places.append(served("dram staged", dram, graphed, direct_tokens=0))
        places.append(served("shards (page cache)", shards, graphed))
        places.append(served("shards files pinned", files, graphed))
        t = time.perf_counter()
        try:
            run_blocks(model, places, prompts, args)
        except Exception as exc:  # one mode failing (a recording, say) leaves the other's table
            log.append(f"\n{mode} decode failed: {exc!r}")
            print(log[-1], flush=True)
            continue
        log += report(
            f"{mode} decode ({gb:.1f} GB table, {time.perf_counter() - t:.0f} s)",
            places,
            args.decode_batch * args.new_tokens,
        )
    log.append(f"total {time.perf_counter() - t0:.0f} s")
    print(log[-1])
    dram.close()
    files.close()
    shards.close()
    shutil.rmtree(args.folder, ignore_errors=True)
    if args.out:
        Path(args.out).write_text("```\n" + "\n".join(log) + "\n```\n")


if __name__ == "__main__":
    main()
