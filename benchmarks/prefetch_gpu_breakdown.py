"""Where the prefill overhead of store-served Engram tables comes from (GPU machine).

    python benchmarks/prefetch_gpu_breakdown.py [--rounds 15]

Same model and batches as ``prefetch_gpu.py`` (small preset, 4.1 GB of tables, 4x4096),
prefill only, blocks of 4 consecutive steps, all variants interleaved in one process; each
variant's overhead is the median per-round ratio against the GPU-resident tables:

- ``gpu + gather load, N threads``: GPU-resident tables while another thread gathers 262K
  random rows in a loop on N torch threads (what host contention alone costs);
- ``dram + prefetch, N threads``: the real path (``runtime.prefetch``), prefetches on N
  threads;
- ``dram, fetched on demand``: no ``runtime.prefetch``;
- ``dram, rows in before the step``: each step's rows fetched (untimed) before it starts,
  so the step pays only for the store path itself, with no concurrent host work.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import torch
from prefetch_gpu import Placement  # this folder is on sys.path when run as a script

BLOCK = 4


def block_time(p: Placement, i: int) -> float:
    """Seconds per step over ``BLOCK`` consecutive steps, ending once prefetches are in."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for k in range(BLOCK):
        p.prefill(i * BLOCK + k)
    p.wait()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / BLOCK


def rows_in_before(p: Placement, i: int) -> float:
    """Seconds per step when each step's rows were fetched before it (fetch untimed)."""
    total = 0.0
    for k in range(BLOCK):
        p.runtime.prefetch(p.ids(i * BLOCK + k))
        for table in p.runtime.tables.values():
            table.start_prefetches()
        p.runtime.wait()
        torch.cuda.synchronize()
        start = time.perf_counter()
        p.prefill(i * BLOCK + k)
        torch.cuda.synchronize()
        total += time.perf_counter() - start
    return total / BLOCK


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    from engram_sdk.model import build_model, get_preset
    from engram_sdk.stores.blocks import take_rows

    from engram_sdk.table_runtime import attach_tables

    cfg = get_preset("small", engram_table_size=[2_000_000] * 2)
    gen = torch.Generator().manual_seed(0)
    batches = [
        torch.randint(0, cfg.vocab_size, (4, 4097), generator=gen).pin_memory() for _ in range(4)
    ]

    def model_with(store: bool):
        model = build_model(cfg, device="cuda", seed=0)
        for table in model.engram_tables().values():
            table.requires_grad_(False)
        return model, attach_tables(model, "dram://") if store else None

    gpu_model, _ = model_with(False)
    dram_model, dram_runtime = model_with(True)
    demand_model, demand_runtime = model_with(True)  # no prefetch left over by another variant
    gpu = Placement("gpu", gpu_model, batches, False)
    ahead = Placement("dram+next", dram_model, batches, True, dram_runtime)
    demand = Placement("dram", demand_model, batches, False, demand_runtime)

    source = np.random.default_rng(0).standard_normal((4_000_000, 32)).astype(np.float32)
    idx = np.random.default_rng(1).integers(0, len(source), 262_144)
    out = np.empty((len(idx), 32), np.float32)

    def with_gather_load(threads: int, i: int) -> float:
        stop = threading.Event()

        def load() -> None:
            torch.set_num_threads(threads)
            while not stop.is_set():
                take_rows(source, idx, out)

        worker = threading.Thread(target=load)
        worker.start()
        try:
            return block_time(gpu, i)
        finally:
            stop.set()
            worker.join()

    def with_prefetch_threads(threads: int, i: int) -> float:
        tables = dram_runtime.tables.values()
        saved = [t.prefetch_threads for t in tables]
        for t in tables:
            t.prefetch_threads = threads
        try:
            return block_time(ahead, i)
        finally:
            for t, n in zip(tables, saved, strict=True):
                t.prefetch_threads = n

    variants = {
        "gpu": lambda i: block_time(gpu, i),
        **{f"gpu + gather load, {n} thr": (lambda i, n=n: with_gather_load(n, i)) for n in (1, 3)},
        **{
            f"dram + prefetch, {n} thr": (lambda i, n=n: with_prefetch_threads(n, i))
            for n in (1, 2, 3)
        },
        "dram, fetched on demand": lambda i: block_time(demand, i),
        "dram, rows in before the step": lambda i: rows_in_before(demand, i),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():  # warm-up
        run(0)
    names = list(variants)
    for i in range(1, args.rounds + 1):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            times[name].append(variants[name](i))
    print(f"\nprefill 4x4096, {args.rounds} interleaved rounds of {BLOCK} steps")
    print(f"{'variant':32} {'ms/step':>8} {'overhead':>9}")
    for name, values in times.items():
        ratios = [a / b - 1 for a, b in zip(values, times["gpu"], strict=True)]
        print(
            f"{name:32} {statistics.median(values) * 1e3:8.2f} "
            f"{statistics.median(ratios) * 100:+8.1f}%"
        )


if __name__ == "__main__":
    main()
