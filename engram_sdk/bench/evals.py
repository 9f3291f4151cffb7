"""``engram bench evals``: sample generation speed, incremental fitter vs RULER's search.

Baseline (same run, same haystack units, same tokenizer): RULER's way of fitting a haystack
to a length, a binary search over the number of units that re-tokenizes the whole prompt at
every step. Ours: each unit tokenized once, prefix sums predict the length, the prompt is
tokenized to confirm (usually once).
"""

from __future__ import annotations

import itertools
import time

import typer
from rich.console import Console
from rich.table import Table


def _ruler_search(build, units: list[str], counter, budget: int) -> tuple[str, int]:
    lo, hi, best = 1, len(units), None
    while lo <= hi:
        mid = (lo + hi) // 2
        text = build(units[:mid], None)
        t = counter.count(text)
        if t <= budget:
            best, lo = (text, t), mid + 1
        else:
            hi = mid - 1
    assert best is not None
    return best


def register(bench_app: typer.Typer) -> None:
    """Add ``engram bench evals``."""

    @bench_app.command("evals")
    def evals_bench(
        lengths: str = typer.Option("32768,131072,1048576", help="comma list of target lengths"),
        repeat: int = typer.Option(3, help="timed repetitions (best is reported)"),
    ) -> None:
        """Time fitting an essay NIAH prompt to each length: ours vs RULER's binary search."""
        from engram_sdk.evals.haystacks import EssayHaystack
        from engram_sdk.evals.length import TiktokenCounter, fit_units, tolerance_for
        from engram_sdk.evals.tasks import generate

        counter = TiktokenCounter()
        needle = "One of the special magic numbers for quiet-river is: 1234567."
        table = Table(title="sample generation (essay haystack, cl100k_base)")
        for col in (
            "length",
            "RULER search s",
            "ours fit s",
            "speed-up",
            "full niah_single_2 s",
            "tokens",
        ):
            table.add_column(col, justify="right")
        for n in [int(x) for x in lengths.split(",")]:
            budget = n - 128
            units = list(itertools.islice(EssayHaystack().units(0), int(n / 12)))

            def build(us, counts, needle=needle):
                k = len(us) // 2
                return "Question prefix.\n" + " ".join([*us[:k], needle, *us[k:]]) + "\nWhat is it?"

            best_base = best_ours = best_full = float("inf")
            tokens = 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                _, t_base = _ruler_search(build, units, counter, budget)
                best_base = min(best_base, time.perf_counter() - t0)
                t0 = time.perf_counter()
                f = fit_units(build, iter(units), " ", counter, budget, tolerance_for(n))
                best_ours = min(best_ours, time.perf_counter() - t0)
                t0 = time.perf_counter()
                s = generate("niah_single_2", n, 1, counter)[0]
                best_full = min(best_full, time.perf_counter() - t0)
                tokens = s.tokens
            assert f.tokens <= budget and t_base <= budget
            table.add_row(
                f"{n:,}",
                f"{best_base:.3f}",
                f"{best_ours:.3f}",
                f"{best_base / best_ours:.1f}x",
                f"{best_full:.3f}",
                f"{tokens:,}",
            )
        Console().print(table)
        Console().print(
            f"(fitted lengths agree: RULER {t_base:,} vs ours {f.tokens:,} tokens at the last length)"
        )
