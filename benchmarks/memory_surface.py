"""Ingest, re-ingest, ``Memory.add`` and ``engram search``: this tree against a baseline
checkout of engram-sdk, side by side in one run.

    git worktree add /tmp/engram-base main      # or any other commit
    python benchmarks/memory_surface.py --baseline /tmp/engram-base --corpus DIR [--repeats 3]

Every case runs in a fresh interpreter; the baseline's runs put its tree first on
``PYTHONPATH`` (so its ``engram_sdk`` package is imported), this tree's runs use the
installed one. Cases alternate between the two, ``--repeats`` times, and the table shows
medians of wall seconds and of CPU seconds (user + sys of the child and its worker
processes: what the load of other processes disturbs least), and ratios baseline / this.
``--corpus`` is copied into a scratch folder (1% of its files are edited there between
re-ingests); without it, ``--mb`` MB of installed Python source are copied.

``engram search`` rows count every query: in this tree the first one searches in process and
starts the memory's warm searcher, the later ones ask it. The searcher is not a child of
this script, so its CPU is read from ``/proc`` when it is stopped at the end and printed
apart (per query).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

INGEST = """
import sys, time
from engram_sdk.memory import Memory
with Memory.open(sys.argv[1], durable=False) as mem:
    mem.ingest(sys.argv[2], progress=False)
"""
ADD = """
import sys
from pathlib import Path
from engram_sdk.memory import Memory
text = Path(sys.argv[2]).read_text()
with Memory.open("dram://") as mem:
    mem.add(text, source="haystack.txt")
"""
CLI = """
import sys
from engram_sdk.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], tree: Path | None) -> tuple[float, float]:
    """Wall and CPU seconds of one child (``tree``: a baseline checkout first on the path)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    cpu = child_cpu()
    started = os.times().elapsed
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return os.times().elapsed - started, child_cpu() - cpu


def edit_one_percent(corpus: Path, round_: int) -> int:
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    picked = files[round_ % 100 :: 100]
    for p in picked:
        with p.open("a") as fh:
            fh.write(f"\n# edited by memory_surface round {round_}\n")
    return len(picked)


def haystack(corpus: Path, folder: Path, size: int = 4_000_000) -> Path:
    """About ``size`` bytes of the corpus's text in one file (the evals' 1M-token sample)."""
    parts, total = [], 0
    for p in sorted(corpus.rglob("*.py")):
        parts.append(p.read_text(errors="replace"))
        total += len(parts[-1])
        if total >= size:
            break
    out = folder / "haystack.txt"
    out.write_text("".join(parts)[:size])
    return out


def measure(corpus: Path, scratch: Path, base: Path, repeats: int) -> dict[str, dict]:
    py = sys.executable
    trees = {"baseline": base, "this": None}
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}

    def add(case: str, name: str, value: tuple[float, float]) -> None:
        rows.setdefault(case, {}).setdefault(name, []).append(value)

    stores = {name: f"lmdb://{scratch / name}" for name in trees}
    for r in range(repeats):  # a fresh store each time, the two trees alternating
        order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
        for name, tree in order:
            shutil.rmtree(scratch / name, ignore_errors=True)
            add("first ingest", name, run([py, "-c", INGEST, stores[name], str(corpus)], tree))
    for r in range(repeats):
        n = edit_one_percent(corpus, r)
        order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
        for name, tree in order:
            argv = [py, "-c", INGEST, stores[name], str(corpus)]
            add(f"re-ingest, {n} files edited", name, run(argv, tree))
    text = haystack(corpus, scratch)
    queries = ["def forward", "AttributeError", "self.weight", "isinstance(", "return None"]
    for _ in range(repeats):
        for name, tree in trees.items():
            add("Memory.add 4 MB", name, run([py, "-c", ADD, "", str(text)], tree))
        for q in queries:
            for name, tree in trees.items():
                argv = [py, "-c", CLI, "search", q, "-k", "10", "--store", stores[name]]
                add("engram search (piped)", name, run(argv, tree))
            if shutil.which("rg"):
                argv = ["rg", "-F", "-i", "-n", "-m", "10", "--", q, str(corpus)]
                add("engram search (piped)", "rg", run(argv, None))
    rows["searcher"] = {"this": [(0.0, stop_searcher(stores["this"]))]}
    return rows


def stop_searcher(uri: str) -> float:
    """Stop this tree's warm searcher of ``uri``; the CPU seconds it used (0 if none ran)."""
    cli = [sys.executable, "-m", "engram_sdk.cli.main", "search", "--store", uri]
    status = subprocess.run([*cli, "--daemon-status"], capture_output=True, text=True).stdout
    cpu = 0.0
    if status.startswith("searcher pid "):
        stat = Path(f"/proc/{status.split()[2]}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    subprocess.run([*cli, "--daemon-stop"], capture_output=True)
    return cpu


def first_wall(rows: dict[str, dict[str, list[tuple[float, float]]]]) -> float:
    """Median wall seconds of this tree's first ingests (interpreter start included)."""
    return statistics.median(w for w, _ in rows["first ingest"]["this"])


def table(rows: dict[str, dict[str, list[tuple[float, float]]]]) -> list[str]:
    head = "| case | baseline wall s | this wall s | wall ratio | baseline CPU s | this CPU s |"
    head += " CPU ratio | rg wall s | rg CPU s |"
    out = [head, "|" + "---|" * 9]
    searcher_cpu = rows.pop("searcher")["this"][0][1]
    for case, by in rows.items():
        med = {
            n: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for n, v in by.items()
        }
        (bw, bc), (tw, tc) = med["baseline"], med["this"]
        rg = med.get("rg")
        rg_cells = f"{rg[0]:.3f} | {rg[1]:.3f}" if rg else "- | -"
        out.append(
            f"| {case} | {bw:.3f} | {tw:.3f} | {bw / tw:.2f}x | {bc:.3f} | {tc:.3f} | "
            f"{bc / tc:.2f}x | {rg_cells} |"
        )
    cli = rows.get("engram search (piped)", {})
    if cli.get("this"):
        walls = {n: [w * 1e3 for w, _ in v] for n, v in cli.items()}
        out.append("")
        out.append(
            "engram search per query, wall ms (every query; first, mean, max): "
            + "; ".join(
                f"{n} {v[0]:.0f}, {statistics.mean(v):.0f}, {max(v):.0f}" for n, v in walls.items()
            )
            + f". This tree's searcher process: {searcher_cpu * 1e3 / len(walls['this']):.0f}"
            " CPU-ms per query (start-up included), not in the CPU column."
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of engram-sdk")
    parser.add_argument("--corpus", type=Path, help="folder of source (copied)")
    parser.add_argument("--mb", type=int, default=100, help="corpus MB when --corpus is not given")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (args.baseline / "engram_sdk" / "memory").is_dir():
        parser.error(
            f"--baseline {args.baseline}: not an engram-sdk checkout (no engram_sdk/memory)"
        )
    with tempfile.TemporaryDirectory(prefix="engram-surface-") as tmp:
        scratch = Path(tmp)
        corpus = scratch / "corpus"
        if args.corpus is not None:
            shutil.copytree(args.corpus, corpus, symlinks=False)
        else:
            from engram_sdk.bench.memory_corpus import copy_corpus

            copy_corpus(corpus, args.mb * 1_000_000)
        n_bytes = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
        rows = measure(corpus, scratch, args.baseline.resolve(), args.repeats)
    print(f"corpus {n_bytes / 1e6:.1f} MB; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    print(f"first ingest of this tree, wall: {n_bytes / 1e6 / first_wall(rows):.1f} MB/s (median)")
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
