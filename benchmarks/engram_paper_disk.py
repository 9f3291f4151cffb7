"""GPU benchmark: an Engram table larger than the memory left to the page cache, from disk.

    source tools/device_setup.sh && python benchmarks/engram_paper_disk.py   # one H200, ~4 min
    python benchmarks/engram_paper_disk.py --smoke                             # CPU, < 1 min

The GPU host has 128 GiB of RAM and a 64 GiB disk, so no table that fits on its disk is
larger than its RAM. This benchmark shrinks the RAM instead, honestly: after writing a
``--table-gib`` ``shards://`` table (default 20 GiB, shrunk to the free disk if need be; the
same rows also in GPU memory for the baseline) it locks host memory in RAM, 1 GiB at a
time (``mlock``, or CUDA's ``cudaHostAlloc`` where the process may not lock memory: either
way the kernel can neither reclaim nor swap it) until only ``--leave-gib`` (4) stay
available, and prints ``/proc/meminfo`` before and after. The page
cache then holds at most that much of the table; everything else comes from the drive on
every pass. Nothing is evicted by hand during the runs: it is the steady state of a table
larger than memory.

The backbone of ``engram_paper_gpu.py`` (dense ~4B bf16, Engram at block 1) runs on
``--seqs`` real-text sequences with its rows from the GPU (twice: ``gpu-again`` is the noise
floor) and:

1. first, while the table still fits in the page cache (no ballast yet), through
   ``PinnedFiles`` (``--warm-placements``: ``files-next`` gathers on the host from the
   mapped files with the next micro-batch prefetched; ``files-in-place`` has the GPU read
   every step's rows from the page cache in place, CUDA-registered; ``files-default`` is
   what ``attach_tables`` does by default, ``PinnedFiles.in_place_tokens``), prefill and
   training (``--page-cache-only``: stop here: the check that decides that default);
2. then, the ballast in place, from the drive (``shards://`` with ``random_access``: no
   read-ahead, reads spread over the worker pool; the next micro-batch prefetched), prefill
   and decoding. Per placement: bytes brought from the drive (this process's major page
   faults x 4 KiB, and the system's ``pgpgin``), per row read; the table's pages resident at
   the end (``mincore``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from engram_paper_harness import Served, Setup, serve_from_store, store_table_name
from engram_paper_parts import SMOKE_VOCAB, build_backbone, dense_config, gpu_tables, sequences
from page_cache import Ballast, evict, io_counters, memory_line, resident_bytes

ROW_BYTES = 128  # 64 bf16 values


def write_table(folder: Path, tables: dict) -> None:
    """The GPU rows into a ``shards://`` store, 8 shards (512 MiB) per commit."""
    from engram_sdk.stores import open_store

    with open_store(f"shards://{folder}", "w", durable=False) as store:
        for layer, table in tables.items():
            name, rows = store_table_name(layer), table.weight
            store.create_table(name, len(rows), rows.shape[1], "bfloat16")
            for start in range(0, len(rows), 1 << 22):
                part = rows[start : start + (1 << 22)].cpu()
                store.scatter(name, np.arange(start, start + len(part)), part)


def io_lines(places: list[Served], setup: Setup, seqs, folder: Path) -> list[str]:
    """Run every phase, counting the drive bytes each placement's blocks brought in."""
    read = {p.name: dict.fromkeys(io_counters(), 0) for p in places}
    rows = {p.name: 0 for p in places}
    mark: list = [None, {}, 0]

    def before_block(p: Served) -> None:
        done, counters, rows_before = mark
        now = io_counters()
        if done is not None:
            for key, value in now.items():
                read[done.name][key] += value - counters[key]
            rows[done.name] += (done.stats.unique_rows if done.stats else 0) - rows_before
        mark[:] = [p, now, p.stats.unique_rows if p.stats is not None else 0]

    title = f"table from disk, larger than the memory left to the page cache ({folder})"
    setup.run(title, places, seqs, before_block=before_block)
    before_block(places[0])
    lines = []
    for p in places:
        per_row = read[p.name]["major faults x page"] / max(rows[p.name] * ROW_BYTES, 1)
        got = ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in read[p.name].items())
        lines.append(
            f"{p.name}: {rows[p.name]} rows of {ROW_BYTES} B read from the store; from the "
            f"drive while its blocks ran: {got} ({per_row:.1f}x the row bytes by faults)"
        )
    return lines


def page_cache_phase(
    setup: Setup, gpu: list[Served], folder: Path, seqs, placements: list[str]
) -> None:
    """The table while it fits in the page cache, through ``PinnedFiles`` (registered with
    CUDA where the driver allows): ``files-next`` gathers on the host with the next batch
    prefetched, ``files-in-place`` has the GPU read every step's rows in place."""
    from engram_sdk.stores import open_store
    from engram_sdk.stores.pinned_files import PinnedFiles

    files = PinnedFiles(open_store(f"shards://{folder}", "r"), pin=setup.device.type == "cuda")
    try:
        setup.log.append(f"shards files registered with CUDA: {all(files.pinned.values())}")
        print(setup.log[-1], flush=True)
        places = list(gpu)
        for key in placements:
            if key == "files-next":
                places.append(serve_from_store("files + next", gpu[0].model, files, ahead=True))
            elif key == "files-default":  # attach_tables' default for this store, prefetching
                name = f"files default ({files.in_place_tokens} in place)"
                places.append(serve_from_store(name, gpu[0].model, files, ahead=True))
            elif key == "files-in-place":
                options = {"direct_tokens": 1 << 40}
                places.append(
                    serve_from_store("files in place", gpu[0].model, files, ahead=False, **options)
                )
            else:
                known = "files-next, files-in-place, files-default"
                raise SystemExit(f"--warm-placements: {key!r}; known: {known}")
        setup.run(f"the same table in the page cache ({folder})", places, seqs)
    finally:
        files.close()  # (unregisters the mapping: its pages become evictable again)


def disk_phase(setup: Setup, gpu: list[Served], folder: Path, seqs, size: int) -> None:
    """The table served from the drive with the ballast in place (see the module)."""
    from engram_sdk.stores import open_store

    store = open_store(f"shards://{folder}", "r", verify_reads=False, random_access=True)
    try:
        places = [*gpu, serve_from_store("disk + next", gpu[0].model, store, ahead=True)]
        lines = io_lines(places, setup, seqs, folder)
        resident = resident_bytes(folder)
        lines.append(
            f"table pages resident at the end (mincore): "
            f"{'n/a' if resident is None else f'{resident / 2**30:.1f} GiB'} of {size / 2**30:.1f} GiB"
        )
        lines.append(memory_line("memory at the end"))
        setup.log += lines
        print("\n".join(lines), flush=True)
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (< 1 minute)")
    ap.add_argument("--table-gib", type=float, default=20.0)
    ap.add_argument("--leave-gib", type=float, default=4.0, help="memory left available")
    ap.add_argument("--seqs", type=int, default=96)
    ap.add_argument("--phases", default="prefill,decode", help="steps timed from disk")
    ap.add_argument("--warm-placements", default="files-next,files-in-place", help="'' to skip")
    ap.add_argument("--warm-phases", default="prefill,train", help="steps timed in the cache")
    ap.add_argument("--prefill-tokens", type=int, default=16384)
    ap.add_argument("--decode-batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--folder", default="/tmp/engram-disk")
    ap.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    ap.add_argument(
        "--page-cache-only", action="store_true", help="phase 1 only (no ballast, no drive)"
    )
    args = ap.parse_args()
    if args.smoke:
        args.table_gib, args.seqs = min(args.table_gib, 0.01), min(args.seqs, 3)
        args.prefill_tokens, args.decode_batch, args.new_tokens = 1024, 4, 2
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on the GPU machine, or use --smoke")
    from engram_sdk.tokenizer import get_tokenizer

    device = torch.device("cpu" if args.smoke else "cuda")
    folder = Path(args.folder)
    setup = Setup(
        device, args.smoke, folder, get_tokenizer().eot_id, args.prefill_tokens, 2048,
        args.decode_batch, args.new_tokens, 0, tuple(args.phases.split(",")),
    )  # fmt: skip
    log = setup.log  # the disk phase's and, appended in order, every line said

    def say(line: str) -> None:
        log.append(line)
        print(line, flush=True)

    start = time.perf_counter()
    seqs = sequences(args.seqs, 100, 130 if args.smoke else 1024)
    if args.smoke:
        seqs, setup.pad = [s % SMOKE_VOCAB for s in seqs], setup.pad % SMOKE_VOCAB
    shutil.rmtree(folder, ignore_errors=True)
    free = shutil.disk_usage(folder.parent if folder.parent.exists() else "/").free
    if args.table_gib * 2**30 > free - 4 * 2**30:  # keep 4 GiB of the disk free
        say(f"--table-gib {args.table_gib} does not fit in {free / 2**30:.1f} GiB free: shrunk")
        args.table_gib = max(free / 2**30 - 4, 0.01)
    params = args.table_gib * 2**30 / 2  # bf16
    model = build_backbone(dense_config(params, args.smoke), device)
    tables = gpu_tables(model, device, seed=3)
    write_table(folder, tables)
    size = sum(p.stat().st_size for p in folder.rglob("*.bin"))
    say(f"table: {size / 2**30:.1f} GiB of shards written in {time.perf_counter() - start:.0f} s")
    gpu = [Served("gpu-resident", model, tables, model), Served("gpu-again", model, tables, model)]
    try:
        if args.warm_placements:
            warm = Setup(
                device, args.smoke, folder, setup.pad, args.prefill_tokens, 2048,
                args.decode_batch, args.new_tokens, 0, tuple(args.warm_phases.split(",")),
            )  # fmt: skip
            page_cache_phase(warm, gpu, folder, seqs, args.warm_placements.split(","))
            log += warm.log
        if args.page_cache_only:
            return
        evict(folder)  # (fsyncs: no dirty page of the table stays in memory)
        say(memory_line("memory before the ballast"))
        ballast = Ballast(int(args.leave_gib * 2**30), limit=(1 << 30) if args.smoke else None)
        say(
            f"ballast: {ballast.pinned / 2**30:.0f} GiB locked in RAM ({ballast.how})"
            + (f" (stopped: {ballast.error})" if ballast.error else "")
        )
        say(memory_line("memory after the ballast"))
        try:
            disk_phase(setup, gpu, folder, seqs, size)
        finally:
            ballast.release()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        say(f"total {time.perf_counter() - start:.0f} s")
        if args.out:
            Path(args.out).write_text("```\n" + "\n".join(log) + "\n```\n")


if __name__ == "__main__":
    main()
