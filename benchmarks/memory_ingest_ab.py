"""First-ingest throughput of this checkout against a baseline revision, same corpus, same run.

    python benchmarks/memory_ingest_ab.py --corpus DIR [--baseline main] [--rounds 3]

Each side (this checkout, and the baseline: a folder holding a checkout such as
``/work/main``, or a revision, ``git archive``-d into a temp folder) ingests ``--corpus``
into a fresh LMDB store (``durable=False``, as ``engram bench memory`` does) in its own
process, sides alternating ``--rounds`` times. Per run: wall seconds, CPU seconds of the
process and its worker processes (user + system), and the store's size. The two sides must
index the same bytes into the same number of passages, or the run fails. Prints a Markdown
table of medians: MB/s, MB per CPU-second (what counts on a shared machine), index/corpus,
with the baseline beside.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from baseline_tree import baseline_tree, run_in_tree  # noqa: E402

CHILD = r"""
import json, os, resource, sys, time
from engram_sdk.memory import Memory
store, corpus = sys.argv[1], sys.argv[2]
with Memory.open(f"lmdb://{store}", durable=False) as mem:
    wall, cpu = time.perf_counter(), time.process_time()
    report = mem.ingest(corpus, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
size = sum(e.stat().st_size for e in os.scandir(store) if e.is_file())
print(json.dumps({"wall": wall, "cpu": cpu + kids.ru_utime + kids.ru_stime, "size": size,
                  "bytes": report.bytes_indexed, "passages": report.passages}))
"""


def _run(tree: Path, store: Path, corpus: Path) -> dict:
    shutil.rmtree(store, ignore_errors=True)
    result = run_in_tree(tree, CHILD, str(store), str(corpus))
    shutil.rmtree(store, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--baseline", default="main", help="a checkout folder or a git revision")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.rounds < 1:
        sys.exit(f"--rounds must be >= 1, got {args.rounds}")
    if not args.corpus.is_dir():
        sys.exit(f"--corpus {args.corpus} is not a folder")
    scratch = Path(tempfile.mkdtemp(prefix="engram-ingest-ab-"))
    try:
        sides = {args.baseline: baseline_tree(args.baseline, scratch), "this checkout": ROOT}
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for r in range(args.rounds):
            for name, tree in sides.items():
                runs[name].append(_run(tree, scratch / "store", args.corpus))
                print(f"round {r + 1}, {name}: {runs[name][-1]}", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _print(runs, args.baseline)


def _print(runs: dict[str, list[dict]], baseline: str) -> None:
    counts = {(r["bytes"], r["passages"]) for side in runs.values() for r in side}
    if len(counts) != 1:
        sys.exit(f"the sides indexed different bytes or passages: {sorted(counts)}")
    nbytes = next(iter(counts))[0]
    med = {
        name: {k: statistics.median(r[k] for r in side) for k in ("wall", "cpu", "size")}
        for name, side in runs.items()
    }
    base, ours = med[baseline], med["this checkout"]
    print(f"corpus: {nbytes / 1e6:.1f} MB; medians of {len(runs[baseline])} runs per side\n")
    print(f"| figure | {baseline} | this checkout | ratio |\n|---|---|---|---|")
    rows = [
        ("ingest MB/s", nbytes / 1e6 / base["wall"], nbytes / 1e6 / ours["wall"]),
        ("ingest MB per CPU-s", nbytes / 1e6 / base["cpu"], nbytes / 1e6 / ours["cpu"]),
        ("index / corpus", base["size"] / nbytes, ours["size"] / nbytes),
    ]
    for label, b, o in rows:
        print(f"| {label} | {b:.2f} | {o:.2f} | {o / b:.2f}x |")


if __name__ == "__main__":
    main()
