"""``engram bench NAME``: benchmarks that print ratios against a baseline of the same run.

Each benchmark is a module ``engram_sdk.bench.<name>`` exposing ``register(bench_app)``.
"""

from __future__ import annotations

import importlib

import typer

BENCH_MODULES = ["hashing", "stores", "memory", "evals", "prefetch", "model", "serve"]


def register(app: typer.Typer) -> None:
    """Add the ``bench`` group with every benchmark module that is installed."""
    bench = typer.Typer(
        help="Benchmarks (ratios against a baseline measured in the same run).",
        no_args_is_help=True,
    )
    for name in BENCH_MODULES:
        try:
            module = importlib.import_module(f"engram_sdk.bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"engram_sdk.bench.{name}":
                continue
            raise
        module.register(bench)
    app.add_typer(bench, name="bench")
