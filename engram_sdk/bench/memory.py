"""``engram bench memory``: ingest speed, index size and query latency/recall against ripgrep.

The corpus is real source available offline: the Python standard library, then installed
site-packages, copied into one folder until it reaches the target size. Queries are a fixed,
seeded sample of identifiers and multi-word phrases taken from the corpus itself. ripgrep
(``rg -F -l``) runs over the same folder with a warm page cache.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{11,40}\b")


def build_corpus(dst: Path, target_bytes: int) -> tuple[int, int]:
    """Copy .py files (stdlib first, then site-packages) into ``dst``; returns (files, bytes)."""
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"]), Path(paths["purelib"])]
    files = total = 0
    seen: set[Path] = set()
    for root in roots:
        for src in sorted(root.rglob("*.py")):
            if total >= target_bytes:
                return files, total
            if src in seen or ("site-packages" in src.parts and root == roots[0]):
                continue
            seen.add(src)
            try:
                rel = src.relative_to(root)
                out = dst / root.name / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out)
            except OSError:
                continue
            files += 1
            total += out.stat().st_size
    return files, total


def pick_queries(corpus: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` identifiers and ``n`` phrases of 3+ words, sampled from the corpus."""
    rng = np.random.default_rng(seed)
    files = sorted(corpus.rglob("*.py"))
    idents: list[str] = []
    phrases: list[str] = []
    while len(idents) < n or len(phrases) < n:
        text = files[int(rng.integers(0, len(files)))].read_text(errors="replace")
        lines = [ln.strip() for ln in text.splitlines() if len(ln.split()) >= 4 and ln.isascii()]
        if not lines:
            continue
        line = lines[int(rng.integers(0, len(lines)))]
        found = IDENT.findall(line)
        if found and len(idents) < n:
            idents.append(found[0])
        words = line.split()
        if len(phrases) < n:
            start = int(rng.integers(0, len(words) - 3))
            phrases.append(" ".join(words[start : start + 3 + int(rng.integers(0, 2))]))
    return idents, phrases


def rg_files(pattern: str, corpus: Path) -> tuple[set[str], float]:
    """Files ``rg -F -l`` finds, and how long it took."""
    start = time.perf_counter()
    out = subprocess.run(
        ["rg", "-F", "-l", "--no-messages", "--", pattern, str(corpus)],
        capture_output=True,
        text=True,
    )
    return {str(Path(p).resolve()) for p in out.stdout.splitlines()}, time.perf_counter() - start


def memory(
    mb: Annotated[int, typer.Option(help="corpus size in MB")] = 100,
    queries: Annotated[int, typer.Option(help="identifier and phrase queries each")] = 25,
    folder: Annotated[
        Path | None, typer.Option(help="scratch folder (default: a temp dir)")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Ingest MB/s, index/corpus size, p50/p99 query latency and recall vs ripgrep."""
    from engram_sdk.memory import Memory

    if shutil.which("rg") is None:
        raise typer.BadParameter("ripgrep (rg) is not installed: apt-get install ripgrep")
    scratch = Path(tempfile.mkdtemp(prefix="engram-bench-mem-", dir=folder))
    try:
        corpus = scratch / "corpus"
        n_files, n_bytes = build_corpus(corpus, mb * 1_000_000)
        idents, phrases = pick_queries(corpus, queries, seed=0)
        with Memory.open(f"lmdb://{scratch / 'mem'}", durable=False) as mem:
            report = mem.ingest(corpus, progress=progress)
            tokens = mem.tokens_indexed
            index_bytes = mem.store.info().bytes_on_disk or 0
        rows = []
        with Memory.open(f"lmdb://{scratch / 'mem'}", "r") as mem:
            for kind, qs in (("identifier", idents), ("phrase", phrases)):
                ours, theirs, found, missed = [], [], 0, 0
                for q in qs:
                    rg_files(q, corpus)  # warm the page cache
                    expected, rg_s = rg_files(q, corpus)
                    mem.search(q, k=10)
                    start = time.perf_counter()
                    mem.search(q, k=10)
                    ours.append(time.perf_counter() - start)
                    theirs.append(rg_s)
                    if len(mem.tokenizer.encode(q)) >= 3:
                        hits = {h.source for h in mem.search(q, k=100_000) if h.phrase_match}
                        found += len(expected & hits)
                        missed += len(expected - hits)
                p = lambda xs, q: float(np.percentile(xs, q)) * 1000  # noqa: E731
                rows.append(
                    (
                        kind,
                        p(ours, 50),
                        p(ours, 99),
                        p(theirs, 50),
                        p(theirs, 99),
                        found / max(found + missed, 1),
                    )
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = Table(
        title=f"engram bench memory: {n_files:,} files, {n_bytes / 1e6:.0f} MB, "
        f"{tokens / 1e6:.1f} M tokens"
    )
    for col in (
        "queries",
        "ours p50 ms",
        "ours p99 ms",
        "rg p50 ms",
        "rg p99 ms",
        "p50 speed-up",
        "recall vs rg",
    ):
        table.add_column(col, justify="right")
    for kind, o50, o99, r50, r99, recall in rows:
        table.add_row(
            kind,
            f"{o50:.2f}",
            f"{o99:.2f}",
            f"{r50:.1f}",
            f"{r99:.1f}",
            f"{r50 / o50:.0f}x",
            f"{recall:.3f}",
        )
    console.print(table)
    console.print(
        f"ingest: {report.mb_per_s:.1f} MB/s ({report.seconds:.0f} s); "
        f"index on disk / corpus: {index_bytes / n_bytes:.2f}x"
    )


def register(bench_app: typer.Typer) -> None:
    """Add ``engram bench memory``."""
    bench_app.command()(memory)
