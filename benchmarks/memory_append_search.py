"""Search right after appends (chat turns), this checkout against a baseline, same run.

    python benchmarks/memory_append_search.py --baseline /work/main [--turns 3000]

Each side (this checkout; the baseline folder's code, through ``PYTHONPATH``) appends
``--turns`` one-line turns to one scope of a fresh store and, after every 100th, searches
(top 10) for the marker of a random earlier turn; it fails if a search misses it. Prints the
CPU p50/p99 of those searches per side and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import json, sys, time
import numpy as np
from engram_sdk.memory import Memory
mem = Memory.open(f"lmdb://{sys.argv[1]}", durable=False)
rng = np.random.default_rng(0)
words = ["alpha", "river", "quiet", "harbor", "zebra", "lamp", "stone", "north", "glass"]
times = []
for t in range(int(sys.argv[2])):
    mem.add(" ".join(rng.choice(words, 30)) + f" marker{t}x", source=f"turn-{t}", scope="chat")
    if t % 100 == 99:
        q = f"marker{int(rng.integers(0, t))}x"
        start = time.thread_time()
        hits = mem.search(q, k=10, scope="chat")
        times.append(time.thread_time() - start)
        assert any(h.phrase_match for h in hits), q
print(json.dumps(times))
"""


def _side(tree: Path, store: Path, turns: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-c", CHILD, str(store), str(turns)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, cwd=tree)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="a folder holding a checkout")
    ap.add_argument("--turns", type=int, default=3000)
    args = ap.parse_args()
    if not args.baseline.is_dir():
        sys.exit(f"--baseline {args.baseline} is not a folder")
    if args.turns < 100:
        sys.exit(f"--turns must be >= 100, got {args.turns}")
    import numpy as np

    scratch = Path(tempfile.mkdtemp(prefix="engram-append-"))
    rows = {}
    for name, tree in (("baseline", args.baseline), ("this checkout", ROOT)):
        times = np.array(_side(tree, scratch / name.replace(" ", "-"), args.turns)) * 1e3
        rows[name] = np.percentile(times, [50, 99])
    print("| side | search after appends CPU p50 / p99 ms |")
    print("|---|---|")
    for name, (p50, p99) in rows.items():
        print(f"| {name} | {p50:.2f} / {p99:.2f} |")
    b, n = rows["baseline"][0], rows["this checkout"][0]
    print(f"\np50 ratio (baseline / this checkout): {b / n:.2f}x")


if __name__ == "__main__":
    main()
