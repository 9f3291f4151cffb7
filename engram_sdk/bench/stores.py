"""``engram bench stores``: gather, write and convert throughput of every backend.

Baseline: ``np.take`` on an in-memory array, measured in the same run on the same ids.
Files are read with a warm page cache (each gather is run once before timing).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)


def _best(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def zipf_trace(rows: int, n: int, a: float, seed: int) -> np.ndarray:
    """``n`` row ids with Zipf(a) popularity over a random permutation of the rows."""
    rng = np.random.default_rng(seed)
    ranks = rng.zipf(a, size=n) - 1
    ranks = ranks[ranks < rows] if (ranks >= rows).any() else ranks
    while len(ranks) < n:
        more = rng.zipf(a, size=n) - 1
        ranks = np.concatenate([ranks, more[more < rows]])
    return rng.permutation(rows)[ranks[:n]]


def run_stores_bench(
    rows: int,
    dim: int,
    batch: int,
    repeats: int,
    folder: Path,
    cache_fraction: float = 0.05,
    progress: bool = False,
) -> dict[str, object]:
    """Run every measurement; returns the table rows and the cache hit rate."""
    from engram_sdk.stores import CachedStore, copy_store, open_store

    rng = np.random.default_rng(0)
    data = rng.standard_normal((rows, dim)).astype(np.float32)
    nbytes = data.nbytes
    ids = rng.integers(0, rows, size=batch)
    out = np.empty((batch, dim), np.float32)
    results: list[dict[str, object]] = []
    base = _best(lambda: np.take(data, ids, axis=0, out=out), repeats)
    results.append(
        {"what": "np.take (in-memory baseline)", "rows_per_s": batch / base, "ratio": 1.0}
    )

    uris = {
        "dram": "dram://",
        "lmdb": f"lmdb://{folder / 'lmdb'}",
        "shards": f"shards://{folder / 'shards'}",
    }
    writes: dict[str, float] = {}
    for name, uri in uris.items():
        with open_store(uri, "w") as store:
            store.create_table("t", rows, dim)
            t = time.perf_counter()
            store.fill("t", lambda a, b: data[a:b], chunk_rows=1 << 16, progress=progress)
            writes[name] = nbytes / (time.perf_counter() - t) / 1e6
            assert np.array_equal(store.gather("t", ids), data[ids])
            secs = _best(lambda store=store: store.gather("t", ids, out=out), repeats)
            # the baseline again, right next to this backend: shared machines drift
            near = _best(lambda: np.take(data, ids, axis=0, out=out), repeats)
            results.append(
                {
                    "what": f"{name} gather",
                    "rows_per_s": batch / secs,
                    "ratio": near / secs,
                    "write_mb_s": writes[name],
                }
            )
    t = time.perf_counter()
    with (
        open_store(uris["lmdb"], "r") as src,
        open_store(f"shards://{folder / 'converted'}", "w") as dst,
    ):
        copy_store(src, dst, progress=progress, verify=True)
    convert_mb_s = nbytes / (time.perf_counter() - t) / 1e6

    trace = zipf_trace(rows, 20 * batch, 1.1, seed=1)
    capacity = int(rows * cache_fraction)
    with open_store(uris["shards"], "r") as store:
        cached = CachedStore(store, capacity)
        for chunk in np.split(trace, 20):
            cached.gather("t", chunk)
        hit_rate = cached.hit_rate
        zipf_ids = trace[-batch:]
        secs = _best(lambda: cached.gather("t", zipf_ids, out=out), repeats)
        plain = _best(lambda: store.gather("t", zipf_ids, out=out), repeats)
        near = _best(lambda: np.take(data, zipf_ids, axis=0, out=out), repeats)
    results.append(
        {
            "what": f"shards + hot cache ({cache_fraction:.0%} rows), Zipf(1.1) ids",
            "rows_per_s": batch / secs,
            "ratio": near / secs,
        }
    )
    results.append(
        {
            "what": "shards, same Zipf(1.1) ids, no cache",
            "rows_per_s": batch / plain,
            "ratio": near / plain,
        }
    )
    return {
        "rows": results,
        "convert_mb_s": convert_mb_s,
        "hit_rate": hit_rate,
        "table_bytes": nbytes,
        "batch": batch,
    }


def stores(
    rows: Annotated[int, typer.Option(help="table rows (default: 1 GiB of 512-byte rows)")] = 1
    << 21,
    dim: Annotated[int, typer.Option(help="float32 values per row")] = 128,
    batch: Annotated[int, typer.Option(help="random row ids per gather")] = 1 << 16,
    repeats: Annotated[int, typer.Option(help="timed repeats (best kept)")] = 5,
    folder: Annotated[
        Path | None, typer.Option(help="scratch folder (default: a temp dir)")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="a small run (64 MiB table, 3 repeats) to try it out")
    ] = False,
) -> None:
    """Random gathers per backend vs np.take, write and convert MB/s, hot-cache hit rate."""
    if quick:
        rows, repeats = min(rows, 1 << 17), min(repeats, 3)
    scratch = Path(tempfile.mkdtemp(prefix="engram-bench-", dir=folder))
    try:
        r = run_stores_bench(rows, dim, batch, repeats, scratch, progress=progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = Table(
        title=f"engram bench stores: {r['table_bytes'] / 2**30:.2f} GiB table, "
        f"{dim * 4}-byte rows, {batch:,} random ids per gather"
    )
    for col in ("measurement", "rows/s", "vs np.take", "sequential write MB/s"):
        table.add_column(col, justify="left" if col == "measurement" else "right")
    for row in r["rows"]:  # type: ignore[union-attr]
        write = row.get("write_mb_s")
        table.add_row(
            str(row["what"]),
            f"{row['rows_per_s']:.3g}",
            f"{row['ratio']:.2f}x",
            f"{write:.0f}" if write else "",
        )
    console.print(table)
    console.print(
        f"convert lmdb → shards (verified): {r['convert_mb_s']:.0f} MB/s; "
        f"hot-row cache hit rate on a Zipf(1.1) trace: {r['hit_rate']:.1%}"
    )


def register(bench_app: typer.Typer) -> None:
    """Add ``engram bench stores``."""
    bench_app.command()(stores)
