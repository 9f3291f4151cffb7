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
from rich.markup import escape
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


def _gather_row(
    what: str,
    fn: Callable[[], object],
    base: Callable[[], object],
    *,
    batch: int,
    repeats: int,
    **extra: object,
) -> dict[str, object]:
    """One table row: ``fn``'s rate and the rate of ``base`` (np.take) timed right beside it."""
    secs = _best(fn, repeats)
    near = _best(base, repeats)  # shared machines drift: the baseline is re-timed per row
    return {"what": what, "rows_per_s": batch / secs, "take_rows_per_s": batch / near, **extra}


def run_stores_bench(
    rows: int,
    dim: int,
    batch: int,
    repeats: int,
    folder: Path,
    cache_fraction: float = 0.05,
    progress: bool = False,
) -> dict[str, object]:
    """Run every measurement; returns the table rows and the cache hit rate.

    Each row carries its own ``np.take`` rate (same ids, timed right before or after it), and
    its ratio is computed from those two printed rates only.
    """
    from engram_sdk.stores import CachedStore, copy_store, open_store
    from engram_sdk.stores.lmdb_store import LmdbStore

    rng = np.random.default_rng(0)
    data = rng.standard_normal((rows, dim)).astype(np.float32)
    nbytes = data.nbytes
    ids = rng.integers(0, rows, size=batch)
    out = np.empty((batch, dim), np.float32)
    results: list[dict[str, object]] = []

    def take(sel: np.ndarray = ids) -> object:
        return np.take(data, sel, axis=0, out=out)

    stores = {
        "dram": lambda: open_store("dram://", "w"),
        "lmdb, no checksums (format 1)": lambda: LmdbStore(
            f"lmdb://{folder / 'lmdb1'}", "w", folder / "lmdb1", checksums=False
        ),
        "lmdb, xxh3 checksums (format 2)": lambda: open_store(f"lmdb://{folder / 'lmdb'}", "w"),
        "shards": lambda: open_store(f"shards://{folder / 'shards'}", "w"),
    }
    for name, opener in stores.items():
        with opener() as store:
            store.create_table("t", rows, dim)
            t = time.perf_counter()
            store.fill("t", lambda a, b: data[a:b], chunk_rows=1 << 16, progress=progress)
            write = nbytes / (time.perf_counter() - t) / 1e6
            if not np.array_equal(store.gather("t", ids), data[ids]):
                raise RuntimeError(f"{name} returned wrong rows")
            results.append(
                _gather_row(
                    f"{name} gather",
                    lambda store=store: store.gather("t", ids, out=out),
                    take,
                    batch=batch,
                    repeats=repeats,
                    write_mb_s=write,
                )
            )
    with open_store(f"lmdb://{folder / 'lmdb'}", "a") as store:

        def after_commit(store=store) -> object:
            store.put("bench", b"tick", b"1")  # a new snapshot: every touched block re-checked
            return store.gather("t", ids, out=out)

        results.append(
            _gather_row(
                "lmdb (checksums), first gather after each commit",
                after_commit,
                take,
                batch=batch,
                repeats=repeats,
            )
        )
    t = time.perf_counter()
    with (
        open_store(f"lmdb://{folder / 'lmdb'}", "r") as src,
        open_store(f"shards://{folder / 'converted'}", "w") as dst,
    ):
        copied = copy_store(src, dst, progress=progress, verify=True)
    convert_mb_s = copied.bytes / (time.perf_counter() - t) / 1e6

    trace = zipf_trace(rows, 20 * batch, 1.1, seed=1)
    zipf_ids = trace[-batch:]
    with open_store(f"shards://{folder / 'shards'}", "r") as store:
        cached = CachedStore(store, int(rows * cache_fraction))
        for chunk in np.split(trace, 20):
            cached.gather("t", chunk)
        hit_rate = cached.hit_rate
        label = f"shards + hot cache ({cache_fraction:.0%} rows), Zipf(1.1) ids"
        results.append(
            _gather_row(
                label,
                lambda: cached.gather("t", zipf_ids, out=out),
                lambda: take(zipf_ids),
                batch=batch,
                repeats=repeats,
            )
        )
        results.append(
            _gather_row(
                "shards, same Zipf(1.1) ids, no cache",
                lambda: store.gather("t", zipf_ids, out=out),
                lambda: take(zipf_ids),
                batch=batch,
                repeats=repeats,
            )
        )
    return {
        "rows": results,
        "convert_mb_s": convert_mb_s,
        "hit_rate": hit_rate,
        "table_bytes": nbytes,
        "batch": batch,
    }


def format_table(r: dict[str, object], dim: int, batch: int) -> Table:
    """The printed table; every ratio is the printed rows/s over the printed np.take rows/s."""
    table = Table(
        title=f"engram bench stores: {r['table_bytes'] / 2**30:.2f} GiB table, "  # type: ignore[operator]
        f"{dim * 4}-byte rows, {batch:,} random ids per gather"
    )
    columns = (
        "measurement",
        "rows/s",
        "np.take rows/s (same ids)",
        "vs np.take",
        "sequential write MB/s",
    )
    for col in columns:
        table.add_column(col, justify="left" if col == "measurement" else "right")
    for row in r["rows"]:  # type: ignore[union-attr]
        rate, base = f"{row['rows_per_s']:.4g}", f"{row['take_rows_per_s']:.4g}"
        write = row.get("write_mb_s")
        table.add_row(
            escape(str(row["what"])),
            rate,
            base,
            f"{float(rate) / float(base):.2f}x",
            f"{write:.0f}" if write else "",
        )
    return table


def stores(
    rows: Annotated[int, typer.Option(help="table rows (default: 1 GiB of 512-byte rows)")] = 1
    << 21,
    dim: Annotated[int, typer.Option(help="float32 values per row")] = 128,
    batch: Annotated[int, typer.Option(help="random row ids per gather")] = 1 << 16,
    repeats: Annotated[int, typer.Option(help="timed repeats (best kept)")] = 5,
    folder: Annotated[
        Path | None, typer.Option(help="scratch folder (default: a temp dir)")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="show progress bars")
    ] = False,
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
    console.print(format_table(r, dim, batch))
    console.print(
        f"convert lmdb → shards (verified, rows and records): {r['convert_mb_s']:.0f} MB/s; "
        f"hot-row cache hit rate on a Zipf(1.1) trace: {r['hit_rate']:.1%}"
    )


def register(bench_app: typer.Typer) -> None:
    """Add ``engram bench stores``."""
    bench_app.command()(stores)
