"""Entry point of the ``engram`` command: the root app and its error handling.

Each command group lives in its own module under ``engram_sdk.cli`` and exposes
``register(app)``. :data:`COMMANDS` names, in help order, the module that registers each
top-level command; a module is imported only when one of its commands runs (or help lists
them), so ``engram version`` or ``engram search`` never import torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.markup import escape

from engram_sdk.cli.lazy import LazyGroup, lazy_group
from engram_sdk.errors import EngramError

COMMANDS: dict[str, str] = {
    "version": "engram_sdk.cli.basic_cmd",
    "tokenize": "engram_sdk.cli.basic_cmd",
    "quickstart": "engram_sdk.cli.quickstart_cmd",
    "store": "engram_sdk.cli.store_cmd",
    "model": "engram_sdk.cli.model_cmd",
    "train": "engram_sdk.cli.model_cmd",
    "ingest": "engram_sdk.cli.memory_cmd",
    "search": "engram_sdk.cli.memory_cmd",
    "context": "engram_sdk.cli.memory_cmd",
    "chat": "engram_sdk.cli.chat_cmd",
    "sessions": "engram_sdk.cli.memory_cmd",
    "sources": "engram_sdk.cli.memory_cmd",
    "forget": "engram_sdk.cli.memory_cmd",
    "serve": "engram_sdk.cli.serve_cmd",
    "mcp": "engram_sdk.cli.serve_cmd",
    "eval": "engram_sdk.cli.eval_cmd",
    "bench": "engram_sdk.cli.bench_cmd",
}
COMMAND_MODULES = list(dict.fromkeys(COMMANDS.values()))

HELP = """engram-sdk: Engram N-gram memory, stores, MoE model, memory and long-context evals.

Start with `engram quickstart`; `engram COMMAND --help` explains each command."""

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def build_root() -> LazyGroup:
    """The root command group; command modules are imported when first needed."""
    root_class = lazy_group(COMMANDS)
    return root_class(name="engram", help=HELP, no_args_is_help=True, rich_markup_mode="rich")


def exit_code_of(result: object) -> int:
    """The process exit code for what a command returned (an int is an exit code)."""
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 on success, non-zero on any failure.

    Expected errors print one line (no traceback); usage errors print the usage.
    """
    root = build_root()
    try:
        result = root.main(args=argv, prog_name="engram", standalone_mode=False)
    except EngramError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        message = f"{exc.strerror or exc}: {exc.filename}"
        err_console.print(f"[bold red]error:[/] {escape(message)}")
        return 2
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("[bold red]aborted[/]")
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, …
        from typer.rich_utils import rich_format_error

        rich_format_error(exc)  # type: ignore[arg-type]
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("ENGRAM_DEBUG"):
            raise
        message = f"{type(exc).__name__}: {exc}"
        err_console.print(
            f"[bold red]error:[/] {escape(message)} (set ENGRAM_DEBUG=1 for a traceback)"
        )
        return 1
    return exit_code_of(result)


if __name__ == "__main__":
    sys.exit(main())
