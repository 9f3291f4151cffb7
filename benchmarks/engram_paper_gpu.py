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

The calls into the table runtime are all in the adapter of ``engram_paper_harness.py``
(``serve_from_store``); the placements, timing and reports live there too.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from engram_paper_harness import (
    Micro,
    Served,
    Setup,
    serve_from_store,
    store_table_name,
    sync,
)
from engram_paper_parts import (
    SMOKE_VOCAB,
    anon_huge_bytes,
    build_backbone,
    dense_config,
    frequency_layouts,
    gpu_tables,
    host_copy,
    host_rows_store,
    load_hot_cache,
    sequences,
    write_rows,
)
from hot_cache_text import real_text_ids
from page_cache import evict, eviction_check, resident_bytes


def paper(
    setup: Setup,
    table_params: float,
    seqs: list[np.ndarray],
    fetch: bool = True,
    in_place: bool = False,
) -> None:
    """Section 1: ~4B dense backbone, one >= 50B-parameter table, pinned host vs GPU rows."""
    t = time.perf_counter()
    cfg = dense_config(table_params, setup.smoke)
    model = build_backbone(cfg, setup.device)
    backbone = sum(p.numel() for p in model.parameters())
    tables = gpu_tables(model, setup.device, seed=1)
    rows = sum(tab.rows * tab.dim for tab in tables.values())
    host = {
        store_table_name(layer): host_copy(tab.weight, setup.huge_pages)
        for layer, tab in tables.items()
    }
    store = host_rows_store(host, pin=setup.device.type == "cuda")
    setup.log.append(
        f"paper protocol: dense backbone {backbone / 1e9:.2f}B parameters (bf16), Engram at block 1, "
        f"table {rows / 1e9:.1f}B bf16 parameters ({rows * 2 / 1e9:.0f} GB) in host memory "
        f"({'pinned' if store.registered else 'NOT pinned'}; "
        f"{anon_huge_bytes() / 1e9:.0f} GB of the process in huge pages) "
        f"and the same rows in GPU memory; {len(seqs)} sequences of {min(map(len, seqs)) - 1}-"
        f"{max(map(len, seqs)) - 1} tokens; set up in {time.perf_counter() - t:.0f} s"
    )
    print(setup.log[-1], flush=True)
    places = [
        Served("gpu-resident", model, tables, model),
        Served("gpu-again", model, tables, model),
    ]
    places.append(serve_from_store("pinned dram + next", model, store, ahead=True))
    if in_place:  # every step's rows read by the GPU in place, started before block 0
        places.append(serve_from_store("dram in place", model, store, ahead=False, **ALL_STEPS))
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


ALL_STEPS = {"direct_tokens": 1 << 40}  # a table option: every step's rows read in place

PLACEMENTS = (
    "dram",
    "dram-in-place",
    "dram-next",
    "shards-next",
    "lmdb-next",
    "files-next",
    "files-in-place",
)


def today(
    setup: Setup,
    table_params: float,
    seqs: list[np.ndarray],
    *,
    placements: tuple[str, ...],
    disk: bool,
) -> None:
    """Sections 2 and 3: today's stores at a smaller size; the shards table cold from disk.

    ``placements`` (of ``PLACEMENTS``; none: section 3 alone): ``dram`` pinned, without
    prefetching; ``dram-in-place``: the GPU gathers every step's rows in place; ``*-next``:
    the next micro-batch prefetched; ``files-*``: the shards table mapped back to back
    and registered with CUDA (``stores/pinned_files.py``): ``files-next`` gathers on the
    host from the mapping, ``files-in-place`` has the GPU read the page cache in place.
    Only the stores these need are written.
    """
    from engram_sdk.stores import open_store
    from engram_sdk.stores.pinned_files import PinnedFiles

    t = time.perf_counter()
    model = build_backbone(dense_config(table_params, setup.smoke), setup.device)
    tables = gpu_tables(model, setup.device, seed=2)
    host = {store_table_name(layer): host_copy(tab.weight) for layer, tab in tables.items()}
    gb = sum(h.numel() for h in host.values()) * 2 / 1e9
    shutil.rmtree(setup.folder, ignore_errors=True)
    cuda = setup.device.type == "cuda"
    stores = {}
    files = any(p.startswith("files") for p in placements)
    if disk or files or "shards-next" in placements:
        stores["shards"] = open_store(f"shards://{setup.folder / 'shards'}", "w", durable=False)
    if any(p.startswith("dram") for p in placements):
        stores["dram"] = open_store("dram://", "a", pinned=cuda)
    if "lmdb-next" in placements:
        stores["lmdb"] = open_store(f"lmdb://{setup.folder / 'lmdb'}", "w", durable=False)
    for store in stores.values():
        with store.transaction():
            write_rows(store, host)
    print(
        f"today's stores: {gb:.1f} GB table written in {time.perf_counter() - t:.0f} s", flush=True
    )
    if files:
        stores["files"] = PinnedFiles(
            open_store(f"shards://{setup.folder / 'shards'}", "r"), pin=cuda
        )
        pinned = all(stores["files"].pinned.values())
        setup.log.append(f"shards files registered with CUDA (read in place): {pinned}")
        print(setup.log[-1], flush=True)
    places = [Served("gpu-resident", model, tables, model)]
    if placements:
        places.append(Served("gpu-again", model, tables, model))
        for key in placements:
            kind = key.removesuffix("-next").removesuffix("-in-place")
            in_place = key.endswith("-in-place")
            options = ALL_STEPS if in_place else {}
            name = "dram (pinned)" if key == "dram" else f"{kind} + next"
            name = f"{kind} in place" if in_place else name
            store = stores[kind]
            places.append(
                serve_from_store(name, model, store, ahead=key.endswith("-next"), **options)
            )
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
        "--placements",
        default="dram,dram-in-place,dram-next,shards-next,lmdb-next",
        help=f"section 2's placements, of {','.join(PLACEMENTS)}",
    )
    ap.add_argument(
        "--graphed-decode",
        action="store_true",
        help="decode steps replayed as one CUDA graph (the pinned rows' gather inside it)",
    )
    ap.add_argument(
        "--paper-in-place",
        action="store_true",
        help="section 1 also with every step's rows read by the GPU in place (dram in place)",
    )
    ap.add_argument(
        "--huge-pages",
        action="store_true",
        help="section 1's host table in transparent huge pages (fewer GPU address translations)",
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
        huge_pages=args.huge_pages,
    )
    start = time.perf_counter()
    seqs = sequences(args.seqs, args.min_len, args.max_len)
    if args.smoke:
        seqs = [s % SMOKE_VOCAB for s in seqs]
        setup.pad %= SMOKE_VOCAB
    sections = set(args.sections.split(","))
    if "paper" in sections:
        paper(
            setup, args.table_params, seqs, fetch="fetch" in sections, in_place=args.paper_in_place
        )
    if sections & {"today", "disk"} and time.perf_counter() - start > args.budget_s - 200:
        setup.log.append(f"sections 2-3 skipped: {time.perf_counter() - start:.0f} s spent")
    elif sections & {"today", "disk"}:
        gc.collect()
        small = seqs[: args.small_seqs]
        chosen = tuple(args.placements.split(",")) if "today" in sections else ()
        unknown = set(chosen) - set(PLACEMENTS)
        if unknown:
            raise SystemExit(f"--placements: unknown {sorted(unknown)}; known: {PLACEMENTS}")
        today(setup, args.small_params, small, placements=chosen, disk="disk" in sections)
    setup.log.append(f"total {time.perf_counter() - start:.0f} s")
    print(setup.log[-1])
    if args.out:
        Path(args.out).write_text("```\n" + "\n".join(setup.log) + "\n```\n")


if __name__ == "__main__":
    main()
