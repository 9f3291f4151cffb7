"""Ingest throughput and incremental re-ingest, each beside its baseline in the same run.

    python benchmarks/memory_ingest.py [--mb 20] [--workers N]

Corpus: the Python standard library's .py files (copied to a temp folder, up to --mb MB).
Rows (every case counted, medians of --repeat runs):
  first ingest        1 process (baseline)      vs  N processes (prepare.py pool)
  re-ingest, 1% edited  every file re-hashed (baseline: all mtimes touched, as when the
                      stat is not trusted)      vs  stat-first (only changed stats read)
Prints a Markdown table; ratios are what count (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path

from engram_sdk.memory import Memory
from engram_sdk.memory.ingest import check_ingest_args, ingest_path

HOUR_NS = 3600 * 10**9


def make_corpus(dst: Path, mb: float) -> int:
    """Copy stdlib .py files into ``dst`` (mtimes an hour old) until ``mb`` MB; bytes copied."""
    src = Path(sysconfig.get_paths()["stdlib"])
    total, old = 0, time.time_ns() - HOUR_NS
    for i, f in enumerate(sorted(src.rglob("*.py"))):
        if total >= mb * 1e6 or "site-packages" in f.parts:
            continue
        size = f.stat().st_size
        if size > 1 << 20:
            continue
        target = dst / f"{i:05d}_{f.name}"
        shutil.copyfile(f, target)
        os.utime(target, ns=(old, old))
        total += size
    return total


def timed_ingest(uri: str, root: Path, workers: int | None) -> tuple[float, int]:
    resolved = check_ingest_args(root, 4 << 20, 32 << 20)
    with Memory.open(uri) as mem:
        started = time.perf_counter()
        report = ingest_path(mem, resolved, "default", False, 4 << 20, 32 << 20, workers)
        return time.perf_counter() - started, report.files_hashed


def edit_one_percent(root: Path, round_: int) -> None:
    files = sorted(root.iterdir())
    for f in files[:: max(1, len(files) // max(1, len(files) // 100))][: max(1, len(files) // 100)]:
        with open(f, "a") as fh:
            fh.write(f"\n# edit {round_}\n")


def touch_all(root: Path, round_: int) -> None:
    stamp = time.time_ns() - HOUR_NS + round_ * 10**9
    for f in root.iterdir():
        os.utime(f, ns=(stamp, stamp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="corpus size in MB")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="pool size")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        root.mkdir()
        nbytes = make_corpus(root, args.mb)
        rows = []
        first = {1: [], args.workers: []}
        for r in range(args.repeat):
            for workers in first:
                seconds, _ = timed_ingest(f"lmdb://{tmp}/first-{workers}-{r}", root, workers)
                first[workers].append(seconds)
        base, ours = statistics.median(first[1]), statistics.median(first[args.workers])
        rows.append(
            (
                "first ingest MB/s",
                f"{nbytes / base / 1e6:.1f} (1 process)",
                f"{nbytes / ours / 1e6:.1f} ({args.workers} processes)",
                base / ours,
            )
        )
        uri = f"lmdb://{tmp}/incremental"
        timed_ingest(uri, root, None)
        touched, stat_first = [], []
        for r in range(args.repeat):
            edit_one_percent(root, 2 * r)
            touch_all(root, 2 * r)
            touched.append(timed_ingest(uri, root, None))
            edit_one_percent(root, 2 * r + 1)
            stat_first.append(timed_ingest(uri, root, None))
        base = statistics.median(s for s, _ in touched)
        ours = statistics.median(s for s, _ in stat_first)
        rows.append(
            (
                "re-ingest, 1% edited (s)",
                f"{base:.3f} (hashed {touched[-1][1]} files)",
                f"{ours:.3f} (hashed {stat_first[-1][1]} files)",
                base / ours,
            )
        )
    files = len(os.listdir(root)) if root.exists() else "?"
    print(f"corpus: {nbytes / 1e6:.1f} MB of stdlib .py ({files} files)\n")
    print("| case | baseline | ours | speed-up |\n|---|---|---|---|")
    for name, b, o, ratio in rows:
        print(f"| {name} | {b} | {o} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
