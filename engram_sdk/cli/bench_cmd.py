"""``engram bench NAME``: benchmarks that print ratios against a baseline of the same run.

Each benchmark is a module ``engram_sdk.bench.<name>`` exposing ``register(bench_app)``;
it is imported only when its benchmark runs (or ``engram bench --help`` lists them), so the
rest of the CLI does not pay for torch.
"""

from __future__ import annotations

import importlib.util

import typer

from engram_sdk.cli.lazy import lazy_group

BENCH_MODULES = ["hashing", "stores", "memory", "evals", "prefetch", "model", "serve"]

HELP = """Benchmarks: each prints ratios against a baseline measured in the same run.

Add --quick for a run of seconds; absolute figures only mean something on the target machine.

Example: engram bench stores --quick"""


def installed_benchmarks() -> dict[str, str]:
    """Benchmark name → module, for the benchmark modules present in this install."""
    modules = {name: f"engram_sdk.bench.{name}" for name in BENCH_MODULES}
    return {name: mod for name, mod in modules.items() if importlib.util.find_spec(mod)}


def register(app: typer.Typer) -> None:
    """Add the ``bench`` group; each benchmark module is imported when first needed."""
    bench = typer.Typer(cls=lazy_group(installed_benchmarks()), help=HELP, no_args_is_help=True)
    app.add_typer(bench, name="bench")
