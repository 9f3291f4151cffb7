"""Decode-only placements of the paper benchmark: rows read in place, hot rows on the GPU.

Used by ``engram_paper_train_profile.py --decode-placements ...``:

- ``dram-triton``: pinned rows read in place by the Triton gather (16-byte loads), no cache;
- ``dram-prio`` / ``dram-hot-prio``: today's in-place path / ``dram-hot`` with the table's
  stream at high priority (an experiment);
- ``runtime-hbm``: a diagnostic, not a placement: the runtime's in-place path (fork, gather,
  join) reading the GPU-resident rows, i.e. what the runtime costs without PCIe;
- ``dram-hot``: the same, with a ``--hot-rows`` GPU cache per table, warmed from
  ``--warm-tokens`` tokens of real text that the benchmark's sequences do not contain (a
  frequency count made ahead of time), then learning from each batch's prefill; decode
  steps read hits from the GPU and only misses over PCIe. Its GPU memory (rows + index) is
  printed: it is part of the placement.

``gather_micro`` times the in-place gather alone on the benchmark's own table and real-text
decode addresses: ``index_select`` from pinned host memory (today's), the Triton kernel,
the Triton kernel with the warmed cache, and the same rows from device memory.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from engram_paper_harness import Served, in_place_hits, serve_from_store, warm_hot_rows
from hot_cache_text import real_text_ids

DECODE_PLACEMENTS = ("dram-triton", "dram-prio", "dram-hot", "dram-hot-prio", "runtime-hbm")


def warm_text(skip_tokens: int, tokens: int) -> np.ndarray:
    """Up to ``tokens`` ids of real text after the first ``skip_tokens`` (the benchmark's)."""
    while tokens > 1000:
        try:
            return real_text_ids(tokens, skip_tokens=skip_tokens)
        except ValueError:  # this Python's standard library holds less text
            tokens //= 2
    raise SystemExit("not enough real text left to warm the hot-row cache")


def decode_places(
    keys: list[str],
    model,
    store,
    hot_rows: int,
    warm_ids: np.ndarray | None,
    say,
    gpu: Served,
    warm_share: float = 0.75,
) -> list[Served]:
    """The decode-only placements ``keys`` (of :data:`DECODE_PLACEMENTS`); hot caches warmed
    to ``warm_share`` of their rows (the rest learns from prefills); ``gpu``: the
    GPU-resident placement (its rows serve ``runtime-hbm``)."""
    out = []
    for key in keys:
        if key == "runtime-hbm":  # a diagnostic: the runtime's path, the rows in device memory
            p = serve_from_store("runtime, rows in HBM", model, store, ahead=False)
            for layer, table in p.runtime.tables.items():
                table._mapped_rows()  # binds the store's array; the view is swapped below
                table._mapped = gpu.tables[layer].weight
            out.append(p)
            continue
        if key == "dram-prio":  # today's in-place path, the table's stream at high priority
            p = serve_from_store("in place, prio stream", model, store, ahead=False)
            high_priority_streams(p)
            out.append(p)
            continue
        if key == "dram-triton":
            out.append(
                serve_from_store(
                    "in place, triton", model, store, ahead=False, in_place_kernel="triton"
                )
            )
            continue
        if key not in ("dram-hot", "dram-hot-prio"):
            raise SystemExit(f"--decode-placements: unknown {key!r}; known: {DECODE_PLACEMENTS}")
        name = (
            f"in place + hot {hot_rows / 2**20:.0f}M"
            if hot_rows >= 2**20
            else f"in place + hot {hot_rows}"
        )
        if key == "dram-hot-prio":
            name = name.replace("in place + hot", "hot") + " + prio stream"
        p = serve_from_store(name, model, store, ahead=False, hot_rows=hot_rows)
        if key == "dram-hot-prio":
            high_priority_streams(p)
        limit = int(hot_rows * warm_share)
        admitted = warm_hot_rows(p, warm_ids, limit) if warm_ids is not None else {}
        mib = (
            sum(
                t.hot.rows.numel() * t.hot.rows.element_size()
                + t.hot.index.ids.nbytes
                + t.hot.index.slots.nbytes
                for t in p.runtime.tables.values()
            )
            / 2**20
        )
        say(
            f"{name}: GPU memory of the cache {mib:.0f} MiB (rows + index); warmed with "
            f"{admitted} rows per layer from {0 if warm_ids is None else len(warm_ids)} tokens "
            "of other text"
        )
        out.append(p)
    return out


def high_priority_streams(p: Served) -> None:
    """An experiment: the tables' streams at high priority (the gather's kernels scheduled
    ahead of block 0's)."""
    for table in p.runtime.tables.values():
        if table.cuda:
            table.stream = torch.cuda.Stream(table.device, priority=-1)


def hit_lines(places: list[Served]) -> list[str]:
    """Hot-cache hit rates of the rows each placement read in place (warm-up steps too)."""
    lines = []
    for p in places:
        hits, rows = in_place_hits(p)
        if rows:
            left_out = sum(t.hot.index.unindexed for t in p.runtime.tables.values())
            lines.append(
                f"  {p.name}: {hits}/{rows} rows read in place were hot ({hits / rows:.3f}); "
                f"{left_out} cached rows left out of the GPU index (full buckets)"
            )
    return lines


def gather_micro(
    places: list[Served], mapped: torch.Tensor, sets: list[torch.Tensor], reps: int = 64
) -> list[str]:
    """Median microseconds of one in-place gather per way, each recorded as a CUDA graph (no
    launch overhead) and replayed on address set after set of ``sets`` (1-D, device), the
    L2 cache flushed before every replay; ``mapped``: a device view of the pinned table."""
    from engram_sdk.table_runtime.hot_gather import find_slots, gather_in_place

    hot = next(
        (
            p
            for p in places
            if p.runtime is not None and any(t.hot is not None for t in p.runtime.tables.values())
        ),
        None,
    )
    gpu = next(p for p in places if p.runtime is None)
    device_rows = next(iter(gpu.tables.values())).weight
    flat = sets[0].clone()
    out = torch.empty((flat.numel(), mapped.shape[1]), dtype=mapped.dtype, device=flat.device)
    ways = {
        "device memory, index_select": lambda: torch.index_select(device_rows, 0, flat, out=out),
        "host, index_select (today)": lambda: torch.index_select(mapped, 0, flat, out=out),
    }
    for rows, warps in ((16, 4), (4, 1), (2, 1)):
        ways[f"host, triton {rows} rows x {warps} warps"] = lambda rows=rows, warps=warps: (
            gather_in_place(
                mapped, flat, out=out, kernel="triton", block_rows=rows, num_warps=warps
            )
        )
    if hot is not None:
        cache = next(iter(hot.runtime.tables.values())).hot
        index = cache.device_index()
        ways[f"host, triton + hot ({cache.capacity} rows)"] = lambda: gather_in_place(
            mapped, flat, index, cache.rows, out, kernel="triton"
        )
    scratch = torch.empty(256 << 20, dtype=torch.uint8, device=flat.device)  # > L2
    lines = [
        f"  in-place gather of {flat.numel()} rows, {len(sets)} real-text decode address sets, "
        f"graph replays, L2 flushed, median of {reps} (us):"
    ]
    for name, fn in ways.items():
        fn()  # compiles, allocates
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        times, same = [], True
        for rep in range(reps):
            flat.copy_(sets[rep % len(sets)])
            scratch.zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3)
            same = same and torch.equal(out, device_rows.index_select(0, flat))
        lines.append(f"    {name:42} {statistics.median(times):8.1f}  bitwise {same}")
    if hot is not None:
        hits = sum(int((find_slots(*index, f) >= 0).sum()) for f in sets)
        lines.append(
            f"    (hot rows: {hits / sum(f.numel() for f in sets):.3f} of these addresses)"
        )
    return lines
