"""GPU benchmark: the Engram paper's protocol, today's placements, and a table from disk.

    source tools/device_setup.sh && python benchmarks/engram_paper_gpu.py     # one H200, < 9 min
    python benchmarks/engram_paper_gpu.py --smoke                               # CPU, < 1 min

1. paper: a dense backbone of ~4B parameters (the project's model config: every layer an
   MLP, MLA attention, no MoE, no mHC) with one Engram layer at block 1 (the paper's second
   block) whose table holds ``--table-params`` (50B) bf16 parameters: 781M rows of 64 values,
   100 GB. Its rows sit once in host memory, pinned in place (``cudaHostRegister``: torch's
   pinned allocator would round 100 GB up to 128 GiB), and once on the GPU: the H200 holds
   the whole table beside the bf16 backbone, so the baseline is the same model with the same
   rows in GPU memory (no shrunken stand-in). 512 sequences of 100-1024 tokens of real text
   (Python's standard library, tokenized and hashed by the project), sorted by length and
   packed into micro-batches; throughput (real tokens/s) of prefill, a training step (bf16
   backbone, plain SGD, the table frozen in both placements so rows are the only difference)
   and decoding (batches of 64 sequences, 16 new tokens each). Placements alternate block by
   block; the overhead is the ratio of total times, with the median and 75th percentile of
   per-block ratios beside it. Logits of the two placements are compared bitwise first.
2. today: the same backbone with a smaller table (``--small-params``), served from
   ``dram://`` (pinned), ``shards://`` and ``lmdb://`` (in the page cache), each with the
   next micro-batch prefetched, against the GPU-resident table (twice: ``gpu-again`` is the
   noise floor), on ``--small-seqs`` sequences; plus ``dram://`` without prefetching, staged
   (big steps) and gathered in place by the GPU for every step (``dram in place``).
3. disk: the ``shards://`` table of section 2 evicted from the page cache before every block
   (``POSIX_FADV_DONTNEED``), so every row comes from the drive as it would for a table larger
   than host memory (this host's 64 GiB disk cannot hold a table larger than its 128 GiB of
   RAM); bytes read from the device per token are reported (``/proc/self/io``).

The calls into the table runtime are all in the adapter below (``serve_from_store``): switch
it to the new ``engram_sdk.table_runtime`` API there.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engram_sdk.table_runtime import attach_tables, table_name

sys.path.insert(0, str(Path(__file__).parent))
from engram_paper_decode import graphed_steps
from engram_paper_parts import (
    SMOKE_VOCAB,
    Micro,
    build_backbone,
    decode_groups,
    dense_config,
    frequency_layouts,
    gpu_tables,
    host_copy,
    host_rows_store,
    load_hot_cache,
    micro_batches,
    sequences,
    write_rows,
)
from hot_cache_text import real_text_ids
from page_cache import evict, eviction_check, resident_bytes


# ---- adapter: the benchmark's only calls into the table runtime ------------------------------
@dataclass
class Served:
    """One placement of a model's Engram rows: its tables and how steps run with them."""

    name: str
    model: torch.nn.Module
    tables: dict
    forward: Callable
    prefetch: Callable[[torch.Tensor], None] = lambda ids: None
    wait: Callable[[], None] = lambda: None
    stats: object = None
    ahead: bool = False
    times: dict[str, list[float]] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)  # allocator flushes while timed

    def activate(self) -> None:
        """Put this placement's tables into the (shared) model."""
        for layer, table in self.tables.items():
            self.model.set_engram_table(layer, table)


def serve_from_store(
    name: str, model: torch.nn.Module, store, *, ahead: bool, **options: int
) -> Served:
    """The model's rows served from ``store`` through the table runtime."""
    rt = attach_tables(model, store, export=False, **options)
    return Served(name, model, dict(rt.tables), rt, rt.prefetch, rt.wait, rt.stats, ahead)


def store_table_name(layer: int) -> str:
    """The store table the runtime reads Engram layer ``layer`` from."""
    return table_name(layer)


def stats_line(served: Served) -> str:
    """Rows read per row requested and fetch/wait milliseconds per fetch."""
    s = served.stats
    if s is None:
        return ""
    fetches = max(s.fetches, 1)
    return (
        f"read/requested {s.unique_rows / max(s.rows_requested, 1):.2f}, fetch "
        f"{s.fetch_seconds / fetches * 1e3:.1f} ms, wait {s.wait_seconds / fetches * 1e3:.1f} ms"
    )


# ---- steps and timing -----------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prefill(p: Served, batches: list[Micro], i: int) -> None:
    if p.ahead and i + 1 < len(batches):  # the next batch's rows load while this one computes
        p.prefetch(batches[i + 1].ids)
    with torch.no_grad():
        p.forward(batches[i].ids)


def train(p: Served, batches: list[Micro], i: int, lr: float = 1e-6) -> None:
    if p.ahead and i + 1 < len(batches):
        p.prefetch(batches[i + 1].ids)
    logits = p.forward(batches[i].ids)
    target = batches[i].targets.to(logits.device, non_blocking=True)
    loss = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=-100)
    loss.backward()
    with torch.no_grad():
        for param in p.model.parameters():
            if param.grad is not None:
                param.add_(param.grad, alpha=-lr)
                param.grad = None


def decode(p: Served, batches: list[Micro], i: int, new_tokens: int, graphed: bool) -> float:
    """Seconds of ``new_tokens`` decode steps after the batch's common prompt (prefill untimed);
    ``graphed``: steps replayed as one CUDA graph (``engram_paper_decode.graphed_steps``)."""
    from engram_sdk.model import ModelCache

    prompt = batches[i].ids[:, : int((batches[i].targets != -100).sum(1).min())]
    if graphed:
        return graphed_steps(p.model, p.forward, prompt, new_tokens)[0]
    device = next(p.model.parameters()).device
    with torch.no_grad():
        cache = ModelCache()
        for start in range(
            0, prompt.shape[1], 256
        ):  # chunks: full logits of 64 x 1K tokens are 13 GB
            logits = p.forward(prompt[:, start : start + 256], cache)[:, -1]
        sync(device)
        start = time.perf_counter()
        for _ in range(new_tokens):
            token = logits.argmax(-1, keepdim=True).cpu()  # generation feeds host ids
            logits = p.forward(token, cache)[:, -1]
        sync(device)
    return time.perf_counter() - start


def interleaved(
    places: list[Served],
    phase: str,
    batches: list[Micro],
    block: int,
    device: torch.device,
    before_block: Callable[[Served], None] = lambda p: None,
    new_tokens: int = 16,
    graphed: bool = False,
) -> None:
    """Every placement runs every micro-batch; placements alternate block by block."""
    shapes = {tuple(b.ids.shape): i for i, b in reversed(list(enumerate(batches)))}
    for p in places:  # warm-up: kernels, allocator, first reads; every shape once
        p.times[phase] = []
        p.activate()
        if phase == "decode":
            decode(p, batches, 0, 2, graphed)
            continue
        for i in sorted(shapes.values()):
            (prefill if phase == "prefill" else train)(p, batches[i : i + 1], 0)
        p.wait()
    for b, first in enumerate(range(0, len(batches), block)):
        rotation = places[b % len(places) :] + places[: b % len(places)]
        for p in rotation:
            p.activate()
            before_block(p)
            retries = alloc_retries(device)
            if phase == "decode":
                p.times[phase].append(decode(p, batches, first, new_tokens, graphed))
            else:
                step = prefill if phase == "prefill" else train
                sync(device)
                start = time.perf_counter()
                for i in range(first, min(first + block, len(batches))):
                    step(p, batches, i)
                p.wait()
                sync(device)
                p.times[phase].append(time.perf_counter() - start)
            p.retries[phase] = p.retries.get(phase, 0) + alloc_retries(device) - retries


def alloc_retries(device: torch.device) -> int:
    """Times the CUDA caching allocator freed its cache to retry an allocation (a stall)."""
    if device.type != "cuda":
        return 0
    return int(torch.cuda.memory_stats(device).get("num_alloc_retries", 0))


def report(title: str, places: list[Served], tokens: dict[str, int]) -> list[str]:
    """Tokens/s per phase and overhead vs the GPU-resident placement(s), with its spread."""
    gpus = [p for p in places if p.name.startswith("gpu")]
    lines = [
        f"\n{title}",
        f"{'placement':24}" + "".join(f" {ph + ' tok/s':>14} {'overhead':>30}" for ph in tokens),
    ]
    for p in places:
        line = f"{p.name:24}"
        for phase, count in tokens.items():
            base = [statistics.fmean(t) for t in zip(*(g.times[phase] for g in gpus), strict=True)]
            ratios = sorted(a / b - 1 for a, b in zip(p.times[phase], base, strict=True))
            q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
            total = sum(p.times[phase]) / sum(base) - 1
            cell = f"{total * 100:+.1f}% ({statistics.median(ratios) * 100:+.1f}% [{q1 * 100:+.1f},{q3 * 100:+.1f}])"
            line += f" {count / sum(p.times[phase]):14.0f} {cell:>30}"
        flushes = "/".join(str(p.retries.get(phase, 0)) for phase in tokens)
        extra = ("  " + stats_line(p) + ", " if p.stats is not None else "  ") + "alloc retries "
        lines.append(line + extra + flushes)
    lines.append(
        "overhead: total time vs the mean of the GPU-resident placements, same batches; in "
        "brackets the median of per-block ratios [25th, 75th percentile]; gpu-again (a second "
        "GPU-resident run) shows the noise floor"
    )
    print("\n".join(lines), flush=True)
    return lines


def same_logits(places: list[Served], batch: Micro) -> dict[str, bool]:
    """Logits of every placement bitwise equal to the first's (no prefetch involved)."""
    out, reference = {}, None
    with torch.no_grad():
        for p in places:
            p.activate()
            logits = p.forward(batch.ids)
            reference = logits if reference is None else reference
            out[p.name] = bool(torch.equal(logits, reference))
    return out


# ---- sections -------------------------------------------------------------------------------------
@dataclass
class Setup:
    device: torch.device
    smoke: bool
    folder: Path
    pad: int
    prefill_tokens: int
    train_tokens: int
    decode_batch: int
    new_tokens: int
    count_tokens: int
    phases: tuple[str, ...] = ("prefill", "train", "decode")
    graphed_decode: bool = False
    log: list[str] = field(default_factory=list)

    def batches(self, seqs: list[np.ndarray]) -> dict[str, list[Micro]]:
        pin = self.device.type == "cuda"
        return {
            "prefill": micro_batches(seqs, self.prefill_tokens, self.pad, pin),
            "train": micro_batches(seqs, self.train_tokens, self.pad, pin),
            "decode": decode_groups(seqs, self.decode_batch, self.pad, pin),
        }

    def run(
        self, title: str, places: list[Served], seqs, before_block=lambda p: None, graphed=False
    ) -> None:
        """Every phase of every placement, interleaved; ``graphed``: decode as CUDA graphs."""
        batches = self.batches(seqs)
        same = same_logits(places, batches["prefill"][0])
        for phase, blocks in (("prefill", 2), ("train", 4), ("decode", 1)):
            if phase not in self.phases:
                continue
            t = time.perf_counter()
            interleaved(
                places,
                phase,
                batches[phase],
                blocks,
                self.device,
                before_block,
                self.new_tokens,
                graphed,
            )
            print(
                f"  {phase}: {len(batches[phase])} batches x {len(places)} placements in {time.perf_counter() - t:.0f} s",
                flush=True,
            )
        tokens = {ph: sum(b.tokens for b in batches[ph]) for ph in ("prefill", "train")}
        tokens["decode"] = sum(len(b.ids) for b in batches["decode"]) * self.new_tokens
        tokens = {ph: n for ph, n in tokens.items() if ph in self.phases}
        self.log += report(title, places, tokens)
        self.log.append(
            "logits bitwise equal to the first placement: "
            + ", ".join(f"{k} {v}" for k, v in same.items())
        )
        print(self.log[-1], flush=True)


def paper(setup: Setup, table_params: float, seqs: list[np.ndarray], fetch: bool = True) -> None:
    """Section 1: ~4B dense backbone, one >= 50B-parameter table, pinned host vs GPU rows."""
    t = time.perf_counter()
    cfg = dense_config(table_params, setup.smoke)
    model = build_backbone(cfg, setup.device)
    backbone = sum(p.numel() for p in model.parameters())
    tables = gpu_tables(model, setup.device, seed=1)
    rows = sum(tab.rows * tab.dim for tab in tables.values())
    host = {store_table_name(layer): host_copy(tab.weight) for layer, tab in tables.items()}
    store = host_rows_store(host, pin=setup.device.type == "cuda")
    setup.log.append(
        f"paper protocol: dense backbone {backbone / 1e9:.2f}B parameters (bf16), Engram at block 1, "
        f"table {rows / 1e9:.1f}B bf16 parameters ({rows * 2 / 1e9:.0f} GB) in host memory "
        f"({'pinned' if store.registered else 'NOT pinned'}) "
        f"and the same rows in GPU memory; {len(seqs)} sequences of {min(map(len, seqs)) - 1}-"
        f"{max(map(len, seqs)) - 1} tokens; set up in {time.perf_counter() - t:.0f} s"
    )
    print(setup.log[-1], flush=True)
    places = [
        Served("gpu-resident", model, tables, model),
        Served("gpu-again", model, tables, model),
    ]
    places.append(serve_from_store("pinned dram + next", model, store, ahead=True))
    graphed = setup.graphed_decode
    title = f"1. paper protocol ({rows / 1e9:.1f}B-parameter table)"
    setup.run(title + (", decode as CUDA graphs" if graphed else ""), places, seqs, graphed=graphed)
    if fetch:  # section 1b
        fetch_path(setup, model, store, setup.batches(seqs)["prefill"])
    for p in places:
        p.tables.clear()
    del places, model, tables
    store.close()
    host.clear()
    gc.collect()
    if setup.device.type == "cuda":
        torch.cuda.empty_cache()


def fetch_path(setup: Setup, model, store, batches: list[Micro], caps=(65536, 1 << 20)) -> None:
    """Section 1b: the fetch path alone (dedup, host gather, copy, expand) per prefill batch,
    today's vs through a GPU hot-row cache of ``caps`` rows, on the paper table's real-text
    addresses: one pass to warm the cache, a second one timed."""
    hot_cache = load_hot_cache()
    layer = next(iter(model.engram_tables()))
    name = store_table_name(layer)
    cuda = setup.device.type == "cuda"
    spec = store.table(name)
    addresses = [model.engram_addresses(b.ids)[layer].reshape(-1).numpy() for b in batches]

    def fetch(missing: np.ndarray) -> torch.Tensor:
        staging = torch.empty((len(missing), spec.dim), dtype=torch.bfloat16, pin_memory=cuda)
        store.gather(name, missing, out=staging)
        return staging.to(setup.device, non_blocking=True)

    lines = ["", "1b. fetch path per prefill batch (dedup + host gather + copy + expand)"]
    lines.append(
        f"{'cache rows':>12} {'ms/batch':>9} {'vs today':>9} {'hit rate':>9} {'rows from host':>15}"
    )
    base = None
    for cap in (0, *caps):
        cache = hot_cache.HotRowCache(
            cap, table_rows=spec.rows, dim=spec.dim, dtype=torch.bfloat16, device=setup.device
        )
        for timed_pass in (False, True):
            if timed_pass:
                cache.stats = hot_cache.HotCacheStats()
            sync(setup.device)
            start = time.perf_counter()
            for flat in addresses:
                unique, inverse = np.unique(flat, return_inverse=True)
                rows = cache.gather(unique, fetch) if cap else fetch(unique)
                rows[torch.from_numpy(inverse.reshape(-1)).to(setup.device)]
            sync(setup.device)
        ms = (time.perf_counter() - start) / len(addresses) * 1e3
        base = base or ms
        fetched = cache.stats.rows_fetched if cap else sum(len(np.unique(a)) for a in addresses)
        lines.append(
            f"{cap:12d} {ms:9.2f} {ms / base:9.2f} {cache.stats.hit_rate:9.3f} "
            f"{fetched / len(addresses):15.0f}"
        )
    setup.log += lines
    print("\n".join(lines), flush=True)


def today(
    setup: Setup, table_params: float, seqs: list[np.ndarray], *, placements: bool, disk: bool
) -> None:
    """Sections 2 and 3: today's stores at a smaller size; the shards table cold from disk
    (``placements=False``: section 3 alone, only the shards store written)."""
    from engram_sdk.stores import open_store

    t = time.perf_counter()
    model = build_backbone(dense_config(table_params, setup.smoke), setup.device)
    tables = gpu_tables(model, setup.device, seed=2)
    host = {store_table_name(layer): host_copy(tab.weight) for layer, tab in tables.items()}
    gb = sum(h.numel() for h in host.values()) * 2 / 1e9
    shutil.rmtree(setup.folder, ignore_errors=True)
    stores = {"shards": open_store(f"shards://{setup.folder / 'shards'}", "w", durable=False)}
    if placements:
        stores["dram"] = open_store("dram://", "a", pinned=setup.device.type == "cuda")
        stores["lmdb"] = open_store(f"lmdb://{setup.folder / 'lmdb'}", "w", durable=False)
    for store in stores.values():
        with store.transaction():
            write_rows(store, host)
    print(
        f"today's stores: {gb:.1f} GB table written in {time.perf_counter() - t:.0f} s", flush=True
    )
    places = [Served("gpu-resident", model, tables, model)]
    if placements:
        places.append(Served("gpu-again", model, tables, model))
        places += [serve_from_store("dram (pinned)", model, stores["dram"], ahead=False)]
        in_place = dict(ahead=False, direct_tokens=1 << 40)  # every step gathered in place
        places += [serve_from_store("dram in place", model, stores["dram"], **in_place)]
        names = ("dram", "shards", "lmdb")
        places += [serve_from_store(f"{k} + next", model, stores[k], ahead=True) for k in names]
        setup.run(f"2. today's placements ({gb:.1f} GB table, page cache)", places, seqs)
    if disk:
        cold_disk(setup, places[0], stores["shards"], seqs, gb)
    for store in stores.values():
        store.close()
    shutil.rmtree(setup.folder, ignore_errors=True)


def cold_disk(setup: Setup, gpu: Served, shards, seqs: list[np.ndarray], gb: float) -> None:
    """Section 3: the shards table read cold, in today's order and laid out by frequency.

    The layout is counted on real text that follows the benchmark's sequences (no overlap).
    """
    from engram_sdk.stores import open_store
    from engram_sdk.stores.laid_out import LaidOutStore
    from engram_sdk.stores.row_layout import save_layout

    t = time.perf_counter()
    skip = sum(len(s) for s in seqs) + len(seqs)
    count_ids = real_text_ids(setup.count_tokens, skip_tokens=skip)
    if setup.smoke:
        count_ids %= SMOKE_VOCAB
    laid_folder = setup.folder / "laid_out"
    with open_store(f"shards://{laid_folder}", "w", durable=False) as laid:
        for layer, layout in frequency_layouts(gpu.model, count_ids).items():
            save_layout(shards, store_table_name(layer), layout, into=laid, source="stdlib text")
    setup.log.append(
        f"frequency layout counted on {len(count_ids)} tokens and written in "
        f"{time.perf_counter() - t:.0f} s"
    )
    print(setup.log[-1], flush=True)
    opts = dict(verify_reads=False, random_access=True)
    plain = open_store(f"shards://{setup.folder / 'shards'}", "r", **opts)
    laid = LaidOutStore(open_store(f"shards://{laid_folder}", "r", **opts))
    places = [
        gpu,
        serve_from_store("cold disk + next", gpu.model, plain, ahead=True),
        serve_from_store("cold laid out + next", gpu.model, laid, ahead=True),
    ]
    cold = {places[1].name: setup.folder / "shards", places[2].name: laid_folder}
    setup.log.append(eviction_check(cold[places[1].name]))
    print(setup.log[-1], flush=True)
    pulled = {name: 0 for name in cold}  # bytes of the store's pages resident after its blocks
    rows = {name: 0 for name in cold}  # rows those blocks read from the store
    mark: list = [None, 0]

    def before_block(p: Served) -> None:
        done, rows_before = mark
        if done is not None and done.name in cold:
            resident = resident_bytes(cold[done.name])
            pulled[done.name] += resident if resident is not None else 0
            rows[done.name] += done.stats.unique_rows - rows_before
        if p.name in cold:
            evict(cold[p.name])
        mark[:] = [p, p.stats.unique_rows if p.stats is not None else 0]

    setup.run(
        f"3. {gb:.1f} GB table evicted from the page cache before every block (from disk)",
        places,
        seqs,
        before_block=before_block,
    )
    before_block(gpu)
    for name in cold:
        row_bytes = 2 * 64
        setup.log.append(
            f"{name}: {pulled[name] / 1e6:.1f} MB of the store's pages brought into the page "
            f"cache (mincore after each block) for {rows[name]} rows of {row_bytes} B read "
            f"({pulled[name] / max(rows[name] * row_bytes, 1):.1f}x the row bytes)"
        )
        print(setup.log[-1], flush=True)
    plain.close()
    laid.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (< 1 minute)")
    ap.add_argument("--sections", default="paper,fetch,today,disk", help="fetch: section 1b")
    ap.add_argument("--phases", default="prefill,train,decode", help="which steps to time")
    ap.add_argument(
        "--graphed-decode",
        action="store_true",
        help="decode steps replayed as one CUDA graph (the pinned rows' gather inside it)",
    )
    ap.add_argument("--table-params", type=float, default=50e9)
    ap.add_argument("--small-params", type=float, default=1e9)
    ap.add_argument("--seqs", type=int, default=512)
    ap.add_argument("--small-seqs", type=int, default=96)
    ap.add_argument("--min-len", type=int, default=100)
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--prefill-tokens", type=int, default=16384)
    ap.add_argument("--train-tokens", type=int, default=2048)
    ap.add_argument("--decode-batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--count-tokens", type=int, default=1_000_000, help="text the layout counts")
    ap.add_argument("--folder", default="/tmp/engram-paper")
    ap.add_argument("--budget-s", type=float, default=470, help="skip sections 2-3 past this")
    ap.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    args = ap.parse_args()
    if args.smoke:
        args.table_params, args.small_params = (
            min(args.table_params, 2e5),
            min(args.small_params, 1e5),
        )
        args.seqs, args.small_seqs, args.max_len = min(args.seqs, 4), min(args.small_seqs, 3), 130
        args.prefill_tokens, args.train_tokens, args.decode_batch = 1024, 300, 4
        args.new_tokens, args.count_tokens = 2, 5000
        torch.set_num_threads(1)  # a shared CPU: more threads only spin
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on the GPU machine, or use --smoke")
    from engram_sdk.tokenizer import get_tokenizer

    device = torch.device("cpu" if args.smoke else "cuda")
    setup = Setup(
        device,
        args.smoke,
        Path(args.folder),
        get_tokenizer().eot_id,
        args.prefill_tokens,
        args.train_tokens,
        args.decode_batch,
        args.new_tokens,
        args.count_tokens,
        tuple(args.phases.split(",")),
        args.graphed_decode,
    )
    start = time.perf_counter()
    seqs = sequences(args.seqs, args.min_len, args.max_len)
    if args.smoke:
        seqs = [s % SMOKE_VOCAB for s in seqs]
        setup.pad %= SMOKE_VOCAB
    sections = set(args.sections.split(","))
    if "paper" in sections:
        paper(setup, args.table_params, seqs, fetch="fetch" in sections)
    if sections & {"today", "disk"} and time.perf_counter() - start > args.budget_s - 200:
        setup.log.append(f"sections 2-3 skipped: {time.perf_counter() - start:.0f} s spent")
    elif sections & {"today", "disk"}:
        gc.collect()
        small = seqs[: args.small_seqs]
        today(
            setup, args.small_params, small, placements="today" in sections, disk="disk" in sections
        )
    setup.log.append(f"total {time.perf_counter() - start:.0f} s")
    print(setup.log[-1])
    if args.out:
        Path(args.out).write_text("```\n" + "\n".join(setup.log) + "\n```\n")


if __name__ == "__main__":
    main()
