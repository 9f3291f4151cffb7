"""``engram bench memory``: ours against ripgrep, SQLite FTS5 trigram and tantivy, one run.

Same corpus (≥ 100 MB of real Python source by default, see
:mod:`engram_sdk.bench.memory_corpus`), same queries for every system. Printed: ingest MB/s,
index size / corpus, in-process p50/p99 per query class (top 10; list-all and regex: every
match), recall per class against ``rg -F -l -i`` (regex: Python ``re`` line by line) counting
every query, CLI wall time per query against ``rg``, and re-ingest after 1% of files changed.
The table is also written as Markdown.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engram_sdk.bench.memory_corpus import copy_corpus, corpus_files, pick_queries
from engram_sdk.bench.memory_peers import Ours, Ripgrep, System, available_peers

console = Console(highlight=False)
SUBSTRING = ("ident-1tok", "ident-2tok", "ident-3+tok", "phrase")


def _regex_oracle(pattern: str, texts: dict[str, str]) -> set[str]:
    """Files with a line matching ``pattern`` case-insensitively (Python ``re``)."""
    rx = re.compile(pattern, re.IGNORECASE)
    return {p for p, t in texts.items() if any(rx.search(line) for line in t.splitlines())}


def _percentiles(xs: list[float]) -> tuple[float, float]:
    if not xs:
        return float("nan"), float("nan")
    return float(np.percentile(xs, 50)) * 1e3, float(np.percentile(xs, 99)) * 1e3


def _cpu_now(*, process: bool = False) -> float:
    """CPU seconds so far of this thread (or of the whole process, threads included) plus
    those of finished children (``rg``): what the load of other processes disturbs least."""
    own = resource.getrusage(resource.RUSAGE_SELF) if process else None
    mine = own.ru_utime + own.ru_stime if own is not None else time.thread_time()
    return mine + _child_cpu()


def _timed(fn, *args):
    """``fn(*args)``, its wall seconds and its CPU seconds."""
    cpu, start = _cpu_now(), time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start, _cpu_now() - cpu


def _measure(system: System, classes: dict[str, list[str]], refs: dict[str, list[set[str]]]):
    """Per class: (p50 ms, p99 ms, recall, queries with full recall, queries, CPU p50 ms,
    CPU p99 ms, first-call CPU p50 ms, first-call CPU p99 ms) for one system. Each query
    runs twice: the second call is timed (warm), the first is reported apart (cold: before
    any cache of the system holds the query's lists)."""
    out = {}
    for cls, queries in classes.items():
        lat, cpu, first_cpu, found, expected, full = [], [], [], 0, 0, 0
        for q, ref in zip(queries, refs[cls], strict=True):
            if cls == "regex":
                if not system.supports_regex:
                    break
                got, _, dc0 = _timed(system.regex, q)
                _, dt, dc = _timed(system.regex, q)
            elif cls == "list-all":
                got, _, dc0 = _timed(system.files, q)
                _, dt, dc = _timed(system.files, q)
            else:
                _, _, dc0 = _timed(system.top, q, 10)
                _, dt, dc = _timed(system.top, q, 10)
                got = system.files(q)
            lat.append(dt)
            cpu.append(dc)
            first_cpu.append(dc0)
            found += len(ref & got)
            expected += len(ref)
            full += ref <= got
        if lat:
            p50, p99 = _percentiles(lat)
            out[cls] = (p50, p99, found / max(expected, 1), full, len(lat), *_percentiles(cpu))
            out[cls] += _percentiles(first_cpu)
    return out


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_child(argv: list[str]) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + sys, all threads) of one child process; its stderr."""
    cpu, start = _child_cpu(), time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True)
    return time.perf_counter() - start, _child_cpu() - cpu, run.stderr


def _cli_times(store: Path, corpus: Path, queries: list[str]) -> dict[str, list[float]]:
    """Wall and CPU seconds of ``engram search`` and of ``rg`` per query, every query counted
    (the first one starts the memory's warm searcher and waits for it, the later ones ask
    it); "torch" is 1.0 if the CLI imported torch; "searcher_cpu" is the searcher
    process's own CPU seconds (not a child of this process, so not in "ours_cpu")."""
    probe = (
        "import sys\nfrom engram_sdk.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', file=sys.stderr)\n"
    )
    out: dict[str, list[float]] = {"ours": [], "ours_cpu": [], "rg": [], "rg_cpu": []}
    torch = False
    uri = f"lmdb://{store}"
    for q in queries:
        argv = ["search", q, "-k", "10", "--store", uri]
        wall, cpu, err = _run_child([sys.executable, "-c", probe, *argv])
        out["ours"].append(wall)
        out["ours_cpu"].append(cpu)
        torch |= "NOTORCH" not in err
        wall, cpu, _ = _run_child(["rg", "-F", "-i", "-n", "-m", "10", "--", q, str(corpus)])
        out["rg"].append(wall)
        out["rg_cpu"].append(cpu)
    out["torch"] = [1.0 if torch else 0.0]
    out["searcher_cpu"] = [_stop_searcher(uri)]
    return out


def _stop_searcher(uri: str) -> float:
    """Stop the memory's warm searcher (if one runs); the CPU seconds it used."""
    cli = [sys.executable, "-m", "engram_sdk.cli.main", "search", "--store", uri]
    status = subprocess.run([*cli, "--daemon-status"], capture_output=True, text=True).stdout
    cpu = 0.0
    if status.startswith("searcher pid "):
        pid = status.split()[2]
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    subprocess.run([*cli, "--daemon-stop"], capture_output=True)
    return cpu


def memory(
    corpus: Annotated[
        Path | None, typer.Option(help="folder of source to use (copied); default: site-packages")
    ] = None,
    mb: Annotated[int, typer.Option(help="corpus size in MB when discovered")] = 100,
    quick: Annotated[
        bool, typer.Option("--quick", help="10 MB slice, 4 queries per class")
    ] = False,
    queries: Annotated[int, typer.Option(help="queries per class")] = 10,
    folder: Annotated[Path | None, typer.Option(help="scratch folder (default: temp)")] = None,
    markdown: Annotated[Path | None, typer.Option(help="also write the table here (.md)")] = None,
    cli: Annotated[bool, typer.Option("--cli/--no-cli", help="time the CLI against rg")] = True,
    turns: Annotated[
        int, typer.Option(help="also append this many chat turns and time searches (0: skip)")
    ] = 0,
) -> None:
    """Ingest MB/s, index size, latency and recall per query class against the peers."""
    if quick:
        mb, queries = 10, 4
    scratch = Path(tempfile.mkdtemp(prefix="engram-bench-mem-", dir=folder))
    try:
        lines = _run(scratch, corpus, mb, queries, cli) if mb else []
        if turns:
            lines += _turns(scratch / "turns", turns)
        if markdown is not None:
            markdown.write_text("\n".join(lines) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _turns(folder: Path, turns: int) -> list[str]:
    """Chat-length scaling table; returns it as Markdown lines."""
    from engram_sdk.bench.memory_turns import scaling

    console.print(f"appending {turns:,} turns")
    rows = scaling(folder, turns)
    cols = ["turns", "index segments", "search p50 ms", "search p99 ms", "p50 vs first"]
    cols += ["CPU p50 ms", "CPU p99 ms", "CPU p50 vs first", "misses"]
    table = Table(title="chat turns in one scope: top-10 search for an earlier turn's marker")
    for c in cols:
        table.add_column(c, justify="right")
    first, first_cpu = rows[0][2], rows[0][5]
    cells = [
        [
            *(f"{n:,}", str(seg), f"{p50:.2f}", f"{p99:.2f}", f"{p50 / first:.2f}x"),
            *(f"{c50:.2f}", f"{c99:.2f}", f"{c50 / first_cpu:.2f}x", str(miss)),
        ]
        for n, seg, p50, p99, miss, c50, c99 in rows
    ]
    for row in cells:
        table.add_row(*row)
    console.print(table)
    console.print(_load_note(n_cores=os.cpu_count() or 1))
    md = ["", "### " + (table.title or ""), "", "| " + " | ".join(cols) + " |"]
    md += ["|" + "---|" * len(cols)] + ["| " + " | ".join(r) + " |" for r in cells]
    return [*md, "", f"- {_load_note(n_cores=os.cpu_count() or 1)}"]


def _run(scratch: Path, source: Path | None, mb: int, per_class: int, cli: bool) -> list[str]:
    corpus = scratch / "corpus"
    if source is not None:
        shutil.copytree(source, corpus, symlinks=False)
    else:
        copy_corpus(corpus, mb * 1_000_000)
    files = [p.resolve() for p in corpus_files(corpus)]
    n_bytes = sum(p.stat().st_size for p in files)
    console.print(f"corpus: {len(files):,} files, {n_bytes / 1e6:.1f} MB; picking queries")
    qs = pick_queries(corpus, per_class, seed=0).classes
    rg = Ripgrep(corpus) if shutil.which("rg") else None
    texts = {str(p): p.read_text(errors="replace") for p in files}
    refs: dict[str, list[set[str]]] = {}
    for cls, items in qs.items():
        if cls == "regex":
            refs[cls] = [_regex_oracle(q, texts) for q in items]
        elif rg is not None:
            refs[cls] = [rg.files(q) for q in items]
        else:
            refs[cls] = [{p for p, t in texts.items() if q.lower() in t.lower()} for q in items]
    del texts
    systems: list[System] = [Ours(scratch / "engram", corpus)]
    systems += available_peers(scratch, corpus)
    rows = []
    for system in systems:
        console.print(f"{system.name}: indexing")
        cpu = _cpu_now(process=True)
        seconds = system.build(files)
        build_cpu = _cpu_now(process=True) - cpu
        size = system.size()
        console.print(f"{system.name}: querying")
        per_class = _measure(system, qs, refs)
        rows.append((system, (seconds, build_cpu), size, per_class))
    changed = files[::100]  # 1% of the files
    for p in changed:
        with p.open("a") as fh:
            fh.write("\n# changed by engram bench memory\n")
    updates = {s.name: s.update(changed) for s, *_ in rows}
    cli_row = None
    if cli and rg is not None:
        ours_mem = rows[0][0]
        assert isinstance(ours_mem, Ours)
        ours_mem.close()
        picks = [q for c in SUBSTRING for q in qs[c][:2]]
        cli_row = _cli_times(scratch / "engram", corpus, picks)
    for s, *_ in rows:
        s.close()
    return _report(rows, updates, cli_row, qs, len(files), n_bytes, len(changed))


def _report(rows, updates, cli_row, qs, n_files, n_bytes, n_changed) -> list[str]:
    classes = list(qs)
    cols = ["system", "ingest MB/s", "ingest MB/CPU-s", "index/corpus"]
    cols += [f"re-ingest {n_changed} files s"]
    cols += [f"{c} p50/p99 ms" for c in classes] + [f"{c} CPU p50/p99 ms" for c in classes]
    cols += [f"{c} 1st-call CPU p50/p99 ms" for c in classes]
    cols += [f"{c} recall" for c in classes]
    lines = []
    for system, (seconds, build_cpu), size, per in rows:
        cells = [
            system.name,
            f"{n_bytes / 1e6 / seconds:.1f}" if seconds else "-",
            f"{n_bytes / 1e6 / build_cpu:.1f}" if seconds and build_cpu else "-",
            f"{size / n_bytes:.2f}x" if size else "-",
            f"{updates[system.name]:.2f}" if updates[system.name] else "-",
        ]
        cells += [f"{per[c][0]:.2f} / {per[c][1]:.2f}" if c in per else "n/a" for c in classes]
        cells += [f"{per[c][5]:.2f} / {per[c][6]:.2f}" if c in per else "n/a" for c in classes]
        cells += [f"{per[c][7]:.2f} / {per[c][8]:.2f}" if c in per else "n/a" for c in classes]
        cells += [
            f"{per[c][2]:.3f} ({per[c][3]}/{per[c][4]} full)" if c in per else "n/a"
            for c in classes
        ]
        lines.append(cells)
    title = f"engram bench memory: {n_files:,} files, {n_bytes / 1e6:.0f} MB"
    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify="right")
    for cells in lines:
        table.add_row(*(escape(x) for x in cells))
    console.print(table)
    notes = [f"queries per class: {', '.join(f'{c} {len(v)}' for c, v in qs.items())}"]
    notes.append(_load_note(n_cores=os.cpu_count() or 1))
    if cli_row is not None:
        med = {name: float(np.median(xs)) for name, xs in cli_row.items()}
        notes.append(
            f"CLI per query ({len(cli_row['ours'])} queries): engram search wall p50 "
            f"{med['ours'] * 1e3:.0f} ms, rg {med['rg'] * 1e3:.0f} ms "
            f"({med['ours'] / med['rg']:.2f}x); CPU p50 {med['ours_cpu'] * 1e3:.0f} ms, "
            f"rg {med['rg_cpu'] * 1e3:.0f} ms ({med['ours_cpu'] / max(med['rg_cpu'], 1e-6):.2f}x); "
            f"first call (starts the searcher, then asks it) {cli_row['ours'][0] * 1e3:.0f} ms, "
            f"slowest {max(cli_row['ours']) * 1e3:.0f} ms, mean {np.mean(cli_row['ours']) * 1e3:.0f}"
            f" ms vs rg {np.mean(cli_row['rg']) * 1e3:.0f} ms; searcher process CPU "
            f"{cli_row['searcher_cpu'][0] * 1e3:.0f} ms in all; "
            f"engram search imports torch: {'yes' if med['torch'] else 'no'}"
        )
    for note in notes:
        console.print(escape(note))
    md = [f"### {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(cells) + " |" for cells in lines]
    md += [""] + [f"- {n}" for n in notes]
    md += ["", "Queries:"] + [f"- {c}: {', '.join(repr(q) for q in v)}" for c, v in qs.items()]
    return md


def _load_note(*, n_cores: int) -> str:
    """The machine's load while measuring: figures of a shared machine are read as ratios."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {n_cores} cores at the end of the run"


def register(bench_app: typer.Typer) -> None:
    """Add ``engram bench memory``."""
    bench_app.command()(memory)
