"""CPU benchmark: hit rate of the hot-row cache vs its capacity, on real text.

    python benchmarks/hot_cache.py [--tokens 1000000] [--batch 4096] [--out hot_cache.md] [--plot hot_cache.png]

Real text (Python's standard library, tokenized and hashed by the project for one Engram
layer of the paper-sized table: 781M rows, 16 heads) is cut into batches of ``--batch``
tokens. Every batch's rows go through a :class:`HotRowCache` of each capacity; the baselines,
measured on the same batches, are no cache (every requested row read: ``dram``) and no cache
with per-batch deduplication (what file stores read). Also shown: a static cache holding the
rows most frequent in a *different* stretch of text (what a frequency count made ahead of
time gives). Every gathered row is checked against the row the store would return.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from hot_cache_text import real_text_ids, table_addresses

from engram_sdk.table_runtime.hot_cache import HotRowCache

PAPER_TABLE_SIZE = 48_828_125  # per head: 16 heads x 64 values = the 50B-parameter table


def row_of(ids: np.ndarray) -> torch.Tensor:
    """The store's row for each id: here the id itself, so every served row can be checked."""
    return torch.from_numpy(ids.astype(np.float64)[:, None])


def run_cache(batches: list[np.ndarray], capacity: int, rows: int) -> dict[str, float]:
    cache = HotRowCache(capacity, table_rows=rows, dim=1, dtype=torch.float64)
    half = len(batches) // 2
    start = time.perf_counter()
    for i, ids in enumerate(batches):
        if i == half:
            settled = (cache.stats.rows_requested, cache.stats.hits)
        got = cache.gather(ids, row_of)
        if not torch.equal(got[:, 0], torch.from_numpy(ids.astype(np.float64))):
            raise AssertionError(f"capacity {capacity}: batch {i} served a wrong row")
    seconds = time.perf_counter() - start
    s = cache.stats
    later_requested, later_hits = s.rows_requested - settled[0], s.hits - settled[1]
    return {
        "hit_rate": s.hit_rate,
        "hit_rate_later": later_hits / max(later_requested, 1),
        "fetched": float(s.rows_fetched),
        "ms_per_batch": seconds / len(batches) * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--capacities", default="4096,16384,65536,262144,1048576")
    ap.add_argument("--out", default=None, help="also write the table as Markdown here")
    ap.add_argument("--plot", default=None, help="also draw hit rate vs capacity (PNG) here")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the cache's own work is single-threaded numpy
    t = time.perf_counter()
    ids = real_text_ids(args.tokens * 2)
    count_part, stream = ids[: args.tokens], ids[args.tokens :]
    addresses, rows = table_addresses(stream, table_size=PAPER_TABLE_SIZE)
    counted, _ = table_addresses(count_part, table_size=PAPER_TABLE_SIZE)
    batches = [addresses[i : i + args.batch].reshape(-1) for i in range(0, len(stream), args.batch)]
    print(
        f"{len(stream)} tokens of real text in {len(batches)} batches, hashed in {time.perf_counter() - t:.0f} s"
    )
    requested = sum(len(b) for b in batches)
    deduped = sum(len(np.unique(b)) for b in batches)
    ids_by_count, counts = np.unique(counted.reshape(-1), return_counts=True)
    ranked = ids_by_count[np.argsort(-counts, kind="stable")]
    lines = [
        f"real text: {len(stream)} tokens, batches of {args.batch} tokens x 16 heads; table {rows} rows",
        "| capacity | cache MB (64 x bf16) | hit rate | hit rate, 2nd half | static top-k hit rate "
        "| rows from store / requested | / deduplicated (file stores) | cache ms/batch |",
        "|---|---|---|---|---|---|---|---|",
        f"| none (dram) | 0 | 0 | 0 | 0 | 1.000 | {requested / deduped:.3f} |  |",
        f"| none, deduplicated | 0 | 0 | 0 | 0 | {deduped / requested:.3f} | 1.000 |  |",
    ]
    results = {}
    for capacity in map(int, args.capacities.split(",")):
        r = run_cache(batches, capacity, rows)
        static = np.isin(np.concatenate(batches), ranked[:capacity]).mean()
        results[capacity] = r
        lines.append(
            f"| {capacity} | {capacity * 128 / 2**20:.0f} | {r['hit_rate']:.3f} | "
            f"{r['hit_rate_later']:.3f} | {static:.3f} | {r['fetched'] / requested:.3f} | "
            f"{r['fetched'] / deduped:.3f} | {r['ms_per_batch']:.1f} |"
        )
        print(lines[-1], flush=True)
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    if args.plot:
        plot(results, args.plot)


def plot(results: dict[int, dict[str, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    caps = sorted(results)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogx(caps, [results[c]["hit_rate"] for c in caps], "o-", label="hit rate")
    ax.semilogx(
        caps, [results[c]["hit_rate_later"] for c in caps], "s--", label="hit rate, 2nd half"
    )
    ax.set_xlabel("cache capacity (rows)")
    ax.set_ylabel("share of requested rows")
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title("Engram hot-row cache on real text")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
