"""Query latency of this checkout against a baseline revision, same store, same run.

    python benchmarks/memory_query_ab.py --corpus DIR [--store DIR] [--baseline main] [--rounds 2]

Each side (this checkout, and the baseline: a folder holding a checkout such as
``/work/main``, or a revision, ``git archive``-d into a temp folder) ingests ``--corpus``
into its own store with its own code (kept under ``--store``/``baseline`` and
``--store``/``checkout`` for reuse: the on-disk formats may differ); the queries are those
of ``engram bench memory`` (seed 0). Each side answers every query in its own process,
sides alternating ``--rounds`` times;
per query the best CPU time of its calls is kept (top 10; regex and list-all: every match).
Each query's first call (cold: its lists and texts not yet read) and second call are also
timed: the second is what ``engram bench memory`` reports as a warm call, and it costs more
than the best of the later ones, which find the query's data in the CPU caches (the first
call's reads evict them).
Hit counts must agree between the two sides (every match for list-all and regex) or the run
fails. The last row lists the files of the list-all queries: with ``one_per_source=True``
where the side has it, else through every matching passage (what ``main`` does); the number
of files must agree. Prints a Markdown table of p50/p99 per class and the speed-up,
baseline beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import json, sys, time
from engram_sdk.memory import Memory
store, qs = sys.argv[1], json.loads(sys.argv[2])
mem = Memory.open(f"lmdb://{store}", mode="r")
out = {}
for cls, items in qs.items():
    k = "all" if cls in ("list-all", "regex") else 10
    times, counts, seconds, firsts = [], [], [], []
    for q in items:
        calls = []
        for _ in range(2 + (2 if k == "all" else 5)):
            start = time.thread_time()
            hits = mem.search(q, k=k, regex=cls == "regex")
            calls.append(time.thread_time() - start)
        firsts.append(calls[0])
        seconds.append(calls[1])
        times.append(min(calls[2:]))
        counts.append(len(hits))
    out[cls] = [times, counts, seconds, firsts]
# listing the files of the list-all queries: one_per_source where the checkout has it, else
# every passage (how main lists files); compared: the number of files
try:
    mem.search("x", k="all", one_per_source=True)
    per_file = {"one_per_source": True}
except TypeError:
    per_file = {}
times, counts = [], []
for q in qs["list-all"]:
    best = 1e9
    for _ in range(2):
        start = time.thread_time()
        hits = mem.search(q, k="all", **per_file)
        best = min(best, time.thread_time() - start)
    times.append(best)
    counts.append(len({h.source for h in hits if h.phrase_match}))
out["list-all files"] = [times, counts, times, times]
print(json.dumps(out))
"""


BUILD = r"""
import sys
from engram_sdk.memory import Memory
with Memory.open(f"lmdb://{sys.argv[1]}", durable=False) as mem:
    mem.ingest(sys.argv[2], progress=False)
"""


def _build(tree: Path, store: Path, corpus: Path) -> None:
    if store.exists():
        return
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-c", BUILD, str(store), str(corpus)]
    subprocess.run(argv, check=True, env=env, cwd=tree)


def _side(tree: Path, store: Path, queries: dict[str, list[str]]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-c", CHILD, str(store), json.dumps(queries)]
    run = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, cwd=tree)
    return json.loads(run.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--store", type=Path, default=None, help="reused if it exists")
    ap.add_argument("--baseline", default="main")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if args.rounds < 1:
        sys.exit(f"--rounds must be >= 1, got {args.rounds}")
    if not args.corpus.is_dir():
        sys.exit(f"--corpus {args.corpus} is not a folder")
    from engram_sdk.bench.memory_corpus import pick_queries

    scratch = Path(tempfile.mkdtemp(prefix="engram-query-ab-"))
    stores = args.store or scratch / "stores"
    queries = pick_queries(args.corpus, 10, seed=0).classes
    if Path(args.baseline).is_dir():
        base = Path(args.baseline)
    else:
        base = scratch / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    sides = {args.baseline: base, "this checkout": ROOT}
    store_of = {args.baseline: stores / "baseline", "this checkout": stores / "checkout"}
    stores.mkdir(parents=True, exist_ok=True)
    for name, tree in sides.items():
        _build(tree, store_of[name], args.corpus)
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, tree in sides.items():
            got = _side(tree, store_of[name], queries)
            old = best.get(name)
            best[name] = (
                got
                if old is None
                else {
                    c: [
                        np.minimum(old[c][0], got[c][0]).tolist(),
                        got[c][1],
                        np.minimum(old[c][2], got[c][2]).tolist(),
                        np.minimum(old[c][3], got[c][3]).tolist(),
                    ]
                    for c in got
                }
            )
    _print(best[args.baseline], best["this checkout"], args.baseline)


def _print(base: dict, new: dict, name: str) -> None:
    """Best-of-calls p50 / p99 per class, then the second call's and the first call's p50
    (per query the least over rounds), baseline beside."""
    print(
        f"| class | {name} p50 / p99 ms | this checkout p50 / p99 ms | p50 speed-up "
        f"| p99 speed-up | 2nd call p50 ms: {name} / this | 1st call p50 ms: {name} / this |"
    )
    print("|---|---|---|---|---|---|---|")
    for cls in base:
        if base[cls][1] != new[cls][1]:
            sys.exit(f"{cls}: hit counts differ: {base[cls][1]} vs {new[cls][1]}")
        b = np.percentile(base[cls][0], [50, 99]) * 1e3
        n = np.percentile(new[cls][0], [50, 99]) * 1e3
        b2, n2 = (np.percentile(side[cls][2], 50) * 1e3 for side in (base, new))
        b1, n1 = (np.percentile(side[cls][3], 50) * 1e3 for side in (base, new))
        later = (
            "| - | - |"
            if cls == "list-all files"
            else (
                f"| {b2:.2f} / {n2:.2f} ({b2 / n2:.2f}x) | {b1:.2f} / {n1:.2f} ({b1 / n1:.2f}x) |"
            )
        )
        print(
            f"| {cls} | {b[0]:.2f} / {b[1]:.2f} | {n[0]:.2f} / {n[1]:.2f} "
            f"| {b[0] / n[0]:.2f}x | {b[1] / n[1]:.2f}x {later}"
        )


if __name__ == "__main__":
    main()
