"""GPU microbenchmark: the GPU gathering rows in place from pinned host memory, by table
size and host page size (what a graphed decode step from a 50B table waits on).

    source tools/device_setup.sh && python benchmarks/prefetch_in_place_pages.py  # H200, ~40 s
    python benchmarks/prefetch_in_place_pages.py --smoke                           # CPU: setup only

One table of ``--gib`` GiB of 128-byte rows in each of: device memory (the baseline);
host memory of 4 KiB pages (``madvise(MADV_NOHUGEPAGE)``, then ``cudaHostRegister``, as
``engram_paper_gpu.py`` pins its 100 GB table); host memory backed by transparent huge
pages (``MADV_HUGEPAGE``, then registered; /proc/self/smaps says how much really is); and
torch's pinned allocator (``cudaHostAlloc``, what ``dram://`` uses). For each, the median
time of ``torch.index_select`` of 1024 random rows (a decode step of 64 sequences x 16
heads) and of 32768 (a 2K-token training step), over the whole table and over its first
2 GiB (CUDA events, after a warm-up). If random rows over the whole table cost much more
than over 2 GiB, and less with huge pages, the GPU's address translation of host pages is
what the in-place read waits on.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from engram_paper_parts import anon_huge_bytes

ROW = 128  # bytes: 64 bf16 values
MADV_HUGEPAGE, MADV_NOHUGEPAGE = 14, 15  # Linux


def host_rows(nbytes: int, huge: bool) -> tuple[mmap.mmap, np.ndarray]:
    """Anonymous memory advised for (or against) huge pages, touched, as (rows, 64) int16."""
    region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    rows = np.frombuffer(region, dtype=np.int16).reshape(-1, ROW // 2)
    libc.madvise(rows.ctypes.data, nbytes, MADV_HUGEPAGE if huge else MADV_NOHUGEPAGE)
    rows[:] = 1  # touch every page (huge pages are given on the first touch)
    return region, rows


def register(rows: np.ndarray) -> bool:
    err = torch.cuda.cudart().cudaHostRegister(rows.ctypes.data, rows.nbytes, 0)
    return int(err) == 0


def gather_us(table: torch.Tensor, count: int, span: int, reps: int) -> float:
    """Median microseconds of gathering ``count`` random rows among the first ``span``."""
    gen = torch.Generator(device=table.device).manual_seed(0)
    times = []
    for rep in range(reps + 3):
        idx = torch.randint(0, span, (count,), device=table.device, generator=gen)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        table.index_select(0, idx)
        end.record()
        end.synchronize()
        if rep >= 3:
            times.append(start.elapsed_time(end) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU: allocate and advise only")
    ap.add_argument("--gib", type=float, default=16.0)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.smoke:
        args.gib = min(args.gib, 0.05)
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on the GPU machine, or use --smoke")
    from engram_sdk.table_runtime.mapped import mapped_view

    nbytes = int(args.gib * 2**30) // (2 << 20) * (2 << 20)
    rows_n = nbytes // ROW
    small = min(rows_n, (2 << 30) // ROW)
    lines = [f"in-place gather: {nbytes / 2**30:.0f} GiB of {ROW}-byte rows per table"]
    t = time.perf_counter()
    tables: dict[str, torch.Tensor] = {}
    keep: list = []
    for name, huge in (("host 4 KiB pages", False), ("host huge pages", True)):
        before = anon_huge_bytes()
        region, rows = host_rows(nbytes, huge)
        keep.append(region)
        got = anon_huge_bytes() - before
        label = f"{name} ({got / nbytes:.0%} THP)"
        if args.smoke or not register(rows):
            lines.append(f"{label}: not registered with CUDA")
            continue
        keep.append(rows)
        tables[label] = mapped_view(rows, "bfloat16", torch.device("cuda"))
    if not args.smoke:
        alloc = torch.ones((rows_n, ROW // 2), dtype=torch.int16, pin_memory=True)
        tables["cudaHostAlloc (dram://)"] = mapped_view(
            alloc.numpy(), "bfloat16", torch.device("cuda")
        )
        keep.append(alloc)
        tables = {
            "device memory": torch.ones((rows_n, ROW // 2), dtype=torch.int16, device="cuda"),
            **tables,
        }
    lines.append(f"set up in {time.perf_counter() - t:.0f} s")
    header = f"{'table':30} {'1024 rows, 2 GiB':>17} {'1024 rows, all':>15} {'32K rows, all':>14}"
    lines += [header]
    for label, table in tables.items():
        cells = [
            gather_us(table, 1024, small, args.reps),
            gather_us(table, 1024, rows_n, args.reps),
            gather_us(table, 32768, rows_n, args.reps),
        ]
        lines.append(f"{label:30} " + " ".join(f"{c:13.1f} us" for c in cells))
    lines.append("median of CUDA-event times per index_select, random rows, after 3 warm-ups")
    print("\n".join(lines), flush=True)
    if args.out:
        Path(args.out).write_text("```\n" + "\n".join(lines) + "\n```\n")
    for rows in keep:
        if isinstance(rows, np.ndarray) and not args.smoke:
            torch.cuda.cudart().cudaHostUnregister(rows.ctypes.data)


if __name__ == "__main__":
    main()
