"""``engram search`` per call, this checkout against a baseline revision and ``rg``, same run.

    python benchmarks/cli_search_ab.py --store DIR --corpus DIR [--baseline main] [--rounds 3]

``--store`` is an ``lmdb://`` memory of ``--corpus`` (made by either side: the text format
is shared). Each round, each side (this checkout, and the baseline: a checkout folder or a
revision, ``git archive``-d into a temp folder) runs the CLI column of
``engram bench memory`` with its own code: the same 8 queries (2 per substring class, seed
0), every call counted, the first one with no searcher running (it starts one), each call
beside ``rg -F -i -n -m 10`` on the corpus; the searcher is stopped after the side's calls.
Prints per side the p50 and mean wall ms over all calls, the first call, the p50 of the
others and the p50 CPU ms of a call, with rg's beside.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from baseline_tree import baseline_tree, run_in_tree  # noqa: E402

CHILD = r"""
import json, sys
from pathlib import Path
from engram_sdk.bench.memory import _cli_times
print(json.dumps(_cli_times(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]))))
"""


def _side(tree: Path, store: Path, corpus: Path, queries: list[str]) -> dict[str, list[float]]:
    argv = (str(store), str(corpus), json.dumps(queries))
    return run_in_tree(tree, CHILD, *argv, drop_env=("ENGRAM_NO_DAEMON",))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True, help="an lmdb memory folder")
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--baseline", default="main", help="a checkout folder or a git revision")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.rounds < 1:
        sys.exit(f"--rounds must be >= 1, got {args.rounds}")
    if not (args.store / "data.mdb").is_file() or not args.corpus.is_dir():
        sys.exit("--store must be an lmdb memory folder and --corpus a folder")
    if shutil.which("rg") is None:
        sys.exit("needs rg on PATH")
    from engram_sdk.bench.memory import SUBSTRING
    from engram_sdk.bench.memory_corpus import pick_queries

    qs = pick_queries(args.corpus, 10, seed=0).classes
    queries = [q for c in SUBSTRING for q in qs[c][:2]]
    scratch = Path(tempfile.mkdtemp(prefix="engram-cli-ab-"))
    try:
        sides = {args.baseline: baseline_tree(args.baseline, scratch), "this checkout": ROOT}
        runs: dict[str, list[dict[str, list[float]]]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, tree in sides.items():
                runs[name].append(_side(tree, args.store.resolve(), args.corpus, queries))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _print(runs)


def _print(runs: dict[str, list[dict[str, list[float]]]]) -> None:
    print("| side | calls | p50 ms | mean ms | first call ms | p50 of the others ms | CPU p50 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, side in runs.items():
        for who, label in (("ours", name), ("rg", f"rg (beside {name})")):
            calls = [t for r in side for t in r[who]]
            firsts = [r[who][0] for r in side]
            others = [t for r in side for t in r[who][1:]]
            cpu = [t for r in side for t in r[f"{who}_cpu"]]
            print(
                f"| {label} | {len(calls)} | {statistics.median(calls) * 1e3:.1f} "
                f"| {statistics.mean(calls) * 1e3:.1f} | {statistics.median(firsts) * 1e3:.0f} "
                f"| {statistics.median(others) * 1e3:.1f} | {statistics.median(cpu) * 1e3:.1f} |"
            )


if __name__ == "__main__":
    main()
