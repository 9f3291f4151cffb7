"""GPU benchmark: an Engram table larger than the GPU memory the model may use, from disk.

    python benchmarks/prefetch_disk_gpu.py [--table-gb 40] [--gpu-gb 24] [--folder /tmp/engram-disk]

The H100 machine's disk (64 GiB) is smaller than its GPU memory (80 GB), so a table larger
than the whole GPU cannot be written there. This run caps the process at ``--gpu-gb`` of GPU
memory (``torch.cuda.set_per_process_memory_fraction``), writes a ``--table-gb`` table (two
Engram layers of the small preset, built with ``engram_tables=False``) as ``shards://`` files,
drops them from the page cache (``POSIX_FADV_DONTNEED``), shows that the table does not fit
on the GPU (out of memory), then serves it from disk (no per-shard read checks, no
read-ahead). It times prefill (1 x 2048 and 4 x 4096, a new batch every step, so rows come
from disk) and decoding against the same architecture with a GPU-resident table small
enough to fit (compute does not depend on table size), interleaved, and reports the bytes
the process read from the disk (``/proc/self/io``).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from page_cache import evict, read_bytes
from prefetch_gpu import Placement, interleaved, overhead


def write_tables(model, uri: str, seed: int = 0) -> float:
    """Write random rows for every Engram layer of ``model`` into a shards store; GB written."""
    from engram_sdk.stores import open_store

    from engram_sdk.table_runtime import table_name

    chunk = 1 << 24  # 1 GiB of 64-byte rows per commit
    written = 0
    start = time.perf_counter()
    with open_store(uri, "w") as store:
        for layer, table in model.engram_tables().items():
            name = table_name(layer)
            store.create_table(name, table.rows, table.dim, "float32")
            rng = np.random.default_rng(seed + layer)
            for first in range(0, table.rows, chunk):
                n = min(chunk, table.rows - first)
                rows = rng.standard_normal((n, table.dim), dtype=np.float32)
                rows *= 0.02
                with store.transaction():
                    store.scatter(name, np.arange(first, first + n, dtype=np.int64), rows)
                written += rows.nbytes
                print(
                    f"  wrote {written / 1e9:5.1f} GB ({written / 1e9 / (time.perf_counter() - start):.2f} GB/s)",
                    flush=True,
                )
    return written / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table-gb", type=float, default=40.0)
    ap.add_argument("--gpu-gb", type=float, default=24.0)
    ap.add_argument("--folder", default="/tmp/engram-disk")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    from engram_sdk.model import build_model, get_preset
    from engram_sdk.stores import open_store

    from engram_sdk.table_runtime import attach_tables

    per_head = int(args.table_gb * 1e9 / (2 * 16 * 16 * 4))  # 2 layers x 16 heads x 64 B rows
    big_cfg = get_preset("small", engram_table_size=[per_head] * 2)
    folder = Path(args.folder)
    shutil.rmtree(folder, ignore_errors=True)
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(args.gpu_gb * 1e9 / total)
    big = build_model(big_cfg, device="cuda", engram_tables=False)
    table_gb = sum(t.rows * t.dim * 4 for t in big.engram_tables().values()) / 1e9
    print(
        f"table {table_gb:.1f} GB; GPU memory for this process capped at {args.gpu_gb:.0f} GB "
        f"of {total / 1e9:.0f} GB",
        flush=True,
    )
    t = time.perf_counter()
    write_tables(big, f"shards://{folder}")
    evict(folder)
    print(f"written and dropped from the page cache in {time.perf_counter() - t:.0f} s", flush=True)
    try:
        held = [torch.empty((t.rows, t.dim), device="cuda") for t in big.engram_tables().values()]
        print("GPU placement: fits (unexpected)")
        del held
    except torch.OutOfMemoryError:
        print(f"GPU placement of the {table_gb:.1f} GB table: out of memory (as expected)")
    torch.cuda.empty_cache()
    store = open_store(f"shards://{folder}", "r", verify_reads=False, random_access=True)
    runtime = attach_tables(big, store, export=False)
    stats = runtime.stats
    small = build_model(get_preset("small", engram_table_size=[2_000_000] * 2), device="cuda")
    for table in small.engram_tables().values():
        table.requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    rows = []
    for shape in ((1, 2049), (4, 4097)):
        batches = [
            torch.randint(0, big_cfg.vocab_size, shape, generator=gen).pin_memory()
            for _ in range(args.rounds + 2)
        ]
        places = [
            Placement("gpu (4.1 GB)", small, batches, False),
            Placement(f"shards disk ({table_gb:.0f} GB)", big, batches, False, runtime),
        ]
        before = read_bytes()
        t = time.perf_counter()
        interleaved(places, "prefill", args.rounds, block=1)  # no prefetch: single steps
        label = f"prefill {shape[0]}x{shape[1] - 1}"
        rows.append((label, places, "prefill", read_bytes() - before))
        print(f"{label}: {time.perf_counter() - t:.0f} s", flush=True)
    before = read_bytes()
    places = [
        Placement("gpu (4.1 GB)", small, batches, False),
        Placement(f"shards disk ({table_gb:.0f} GB)", big, batches, False, runtime),
    ]
    interleaved(places, "decode", 3)
    rows.append(("decode / token", places, "decode", read_bytes() - before))
    print(f"\n{'step':18} {'gpu ms':>9} {'disk ms':>9} {'overhead':>10} {'read from disk':>15}")
    for label, places, phase, read in rows:
        gpu_s = overhead(places[0], places[0].times[phase], phase)[0]
        disk_s, ratio, _q3 = overhead(places[1], places[0].times[phase], phase)
        print(
            f"{label:18} {gpu_s * 1e3:9.2f} {disk_s * 1e3:9.2f} {ratio * 100:+9.0f}% "
            f"{read / 1e9:12.2f} GB"
        )
    print(
        f"fetches {stats.fetches}, rows requested {stats.rows_requested}, "
        f"unique {stats.unique_rows}, wait {stats.wait_seconds:.1f} s"
    )
    runtime.detach()
    store.close()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
