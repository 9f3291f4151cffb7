"""Entry point of the ``engram`` command: the root app and its error handling.

Each command group lives in its own module under ``engram_sdk.cli`` and exposes
``register(app)``; :data:`COMMAND_MODULES` lists them in help order.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from engram_sdk.errors import EngramError

COMMAND_MODULES = [
    "engram_sdk.cli.basic_cmd",
    "engram_sdk.cli.quickstart_cmd",
    "engram_sdk.cli.store_cmd",
    "engram_sdk.cli.model_cmd",
    "engram_sdk.cli.memory_cmd",
    "engram_sdk.cli.eval_cmd",
    "engram_sdk.cli.bench_cmd",
    "engram_sdk.cli.chat_cmd",
    "engram_sdk.cli.serve_cmd",
]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def build_app() -> typer.Typer:
    """The root Typer app with every command group registered."""
    app = typer.Typer(
        name="engram",
        help="engram-sdk: Engram N-gram memory, stores, MoE model, memory and long-context evals.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected errors print one line and exit non-zero."""
    app = build_app()
    try:
        app(args=argv, prog_name="engram", standalone_mode=False)
    except EngramError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        err_console.print(f"[bold red]error:[/] {exc.strerror or exc}: {exc.filename}")
        return 2
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors and anything unexpected
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click/typer usage errors
            exc.show()
            return int(exc.exit_code)
        if type(exc).__name__ == "Abort":
            return 1
        if os.environ.get("ENGRAM_DEBUG"):
            raise
        err_console.print(
            f"[bold red]error:[/] {type(exc).__name__}: {exc} (set ENGRAM_DEBUG=1 for a traceback)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
