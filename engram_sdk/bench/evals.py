"""``engram bench evals``: sample generation speed, against baselines run in the same process.

Per length, the same essay NIAH prompt is fitted three ways:

* RULER's way: a binary search over the number of haystack units that re-tokenizes the
  whole prompt at every step;
* the previous implementation: essay sentences drawn one ``random`` call at a time, every
  unit tokenized on its own, the whole prompt counted on one thread;
* now: sentences drawn in numpy blocks, units tokenized 32 at a time (above 64K tokens), the
  whole prompt counted in pieces on several threads.

Then whole samples: one ``niah_single_2`` sample now, and a batch of samples generated
serially vs on a process pool (``--workers``).

Last, one sample end to end through the memory pipeline, model generation excluded: the
sample generated (the first of its haystack seed, and the next one, whose haystack tokens
are remembered), ingested into a Memory, and its context recalled and focused; against the
same code with nothing remembered between samples (no :class:`MemoCounter`, haystack units
generated afresh), in the same run.
"""

from __future__ import annotations

import itertools
import time

import typer
from rich.console import Console
from rich.table import Table

NEEDLE = "One of the special magic numbers for quiet-river is: 1234567."


def _build(units, counts):
    k = len(units) // 2
    return "Question prefix.\n" + " ".join([*units[:k], NEEDLE, *units[k:]]) + "\nWhat is it?"


def _ruler_search(units: list[str], counter, budget: int) -> tuple[str, int]:
    lo, hi, best = 1, len(units), None
    while lo <= hi:
        mid = (lo + hi) // 2
        text = _build(units[:mid], None)
        t = counter.count(text)
        if t <= budget:
            best, lo = (text, t), mid + 1
        else:
            hi = mid - 1
    assert best is not None
    return best


def _best_of(repeat: int, fn):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _fit_row(n: int, repeat: int) -> tuple[list[str], int, int]:
    from engram_sdk.evals.haystacks import EssayHaystack
    from engram_sdk.evals.length import TiktokenCounter, fit_units, tolerance_for
    from engram_sdk.evals.tasks import generate_one

    old_counter, new_counter = TiktokenCounter(threads=1), TiktokenCounter()
    budget, tol = n - 128, tolerance_for(n)
    units = list(itertools.islice(EssayHaystack().units(0), int(n / 12)))
    t_ruler, (_, tok_ruler) = _best_of(repeat, lambda: _ruler_search(units, old_counter, budget))

    def previous():
        hay = EssayHaystack(vectorized=False).units(0)
        return fit_units(_build, hay, " ", old_counter, budget, tol, block=1)

    def now():
        return fit_units(_build, EssayHaystack().units(0), " ", new_counter, budget, tol)

    t_prev, fp = _best_of(repeat, previous)
    t_now, fn = _best_of(repeat, now)
    t_full, s = _best_of(repeat, lambda: generate_one("niah_single_2", n, 0, new_counter))
    assert max(tok_ruler, fp.tokens, fn.tokens) <= budget
    row = [
        f"{n:,}",
        f"{t_ruler:.3f}",
        f"{t_prev:.3f}",
        f"{t_now:.3f}",
        f"{t_ruler / t_now:.1f}x",
        f"{t_prev / t_now:.1f}x",
        f"{t_full:.3f}",
    ]
    return row, fn.tokens, s.length


def _end_to_end(length: int, counter_spec: str) -> Table:
    from engram_sdk.evals import haystacks
    from engram_sdk.evals.essay_counts import essay_counts
    from engram_sdk.evals.focus import arrange
    from engram_sdk.evals.memo_counter import MemoCounter
    from engram_sdk.evals.tasks import generate_one
    from engram_sdk.memory import Memory

    inner = _counter(counter_spec)

    def timed(fn):
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    haystacks._STREAMS.clear()
    plain_first, _ = timed(lambda: generate_one("niah_single_2", length, 0, inner))
    haystacks._STREAMS.clear()
    plain_next, sample = timed(lambda: generate_one("niah_single_2", length, 1, inner))
    haystacks._STREAMS.clear()
    memo = MemoCounter(inner)
    t_table, _ = timed(lambda: essay_counts(inner))  # once per tokenizer and process
    memo_first, _ = timed(lambda: generate_one("niah_single_2", length, 0, memo))
    memo_next, again = timed(lambda: generate_one("niah_single_2", length, 1, memo))
    if again.input != sample.input or again.tokens != sample.tokens:
        raise RuntimeError("remembered counts changed the sample: MemoCounter is wrong here")

    def ingest():
        mem = Memory.open("dram://")
        mem.add(sample.context, source="haystack.txt")
        return mem

    t_ingest, mem = timed(ingest)
    t_recall, _ = timed(
        lambda: arrange(mem.context(sample.query, max_tokens=2048).text, sample.query, "focus")
    )
    mem.close()
    table = Table(
        title=f"one niah_single_2 sample of {length:,} {inner.name} tokens through memory, "
        "model generation excluded (seconds)"
    )
    for col in ("stage", "nothing remembered s", "now s", "vs nothing remembered"):
        table.add_column(col, justify="right")
    rows = [
        ("per-word count table (once per tokenizer)", 0.0, t_table),
        ("generate: first sample of a seed", plain_first, memo_first),
        ("generate: next sample, same seed", plain_next, memo_next),
        ("ingest into memory", t_ingest, t_ingest),
        ("recall + focus", t_recall, t_recall),
        (
            "total: next sample",
            plain_next + t_ingest + t_recall,
            memo_next + t_ingest + t_recall,
        ),
    ]
    for label, before, now in rows:
        ratio = f"{before / now:.2f}x" if before and now else "-"
        table.add_row(label, f"{before:.3f}", f"{now:.3f}", ratio)
    return table


def _counter(spec: str):
    from engram_sdk.evals.length import TiktokenCounter

    if spec != "smollm2":
        return TiktokenCounter(spec)
    from engram_sdk.evals.gguf_counter import gguf_counter
    from engram_sdk.llm.llamacpp import default_model_path

    counter = gguf_counter(default_model_path())
    if counter is None:
        raise typer.BadParameter("the SmolLM2 GGUF tokenizer could not be rebuilt")
    return counter


def register(bench_app: typer.Typer) -> None:
    """Add ``engram bench evals``."""

    @bench_app.command("evals")
    def evals_bench(
        lengths: str = typer.Option("32768,131072,1048576", help="comma list of target lengths"),
        repeat: int = typer.Option(2, help="timed repetitions (the best is reported)"),
        batch: int = typer.Option(8, help="samples in the serial-vs-pool comparison"),
        batch_length: int = typer.Option(131072, help="length of those samples"),
        workers: int = typer.Option(0, help="pool processes (0: all cores)"),
        sample_length: int = typer.Option(
            0, help="length of the end-to-end sample (0: the largest of --lengths)"
        ),
        sample_counter: str = typer.Option(
            "cl100k_base",
            help="tokenizer of the end-to-end sample: a tiktoken encoding or smollm2 (its GGUF)",
        ),
    ) -> None:
        """Time fitting and generating samples: now vs the previous implementation and
        RULER's search, and a batch serially vs on a process pool."""
        from engram_sdk.evals.length import TiktokenCounter
        from engram_sdk.evals.pool import Job, default_workers, generate_all

        table = Table(title="sample generation (essay NIAH prompt, cl100k_base, best of runs)")
        for col in (
            "length",
            "RULER search s",
            "previous s",
            "now s",
            "vs RULER",
            "vs previous",
            "full niah_single_2 s",
        ):
            table.add_column(col, justify="right")
        for n in [int(x) for x in lengths.split(",")]:
            row, _, _ = _fit_row(n, repeat)
            table.add_row(*row)
        console = Console(highlight=False)
        console.print(table)
        counter = TiktokenCounter()
        jobs = [Job("niah_single_2", batch_length, i, 42) for i in range(batch)]
        t_serial, _ = _best_of(1, lambda: generate_all(jobs, counter, workers=1))
        w = workers or default_workers()
        t_pool, _ = _best_of(1, lambda: generate_all(jobs, counter, workers=w))
        console.print(
            f"{batch} niah_single_2 samples at {batch_length:,} tokens: serial {t_serial:.2f} s, "
            f"{w} processes {t_pool:.2f} s ({t_serial / t_pool:.1f}x)"
        )
        longest = max(int(x) for x in lengths.split(","))
        console.print(_end_to_end(sample_length or longest, sample_counter))
