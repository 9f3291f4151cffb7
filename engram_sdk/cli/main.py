"""Entry point of the ``engram`` command: the root app and its error handling.

Each command group lives in its own module under ``engram_sdk.cli`` and exposes
``register(app)``. :data:`COMMANDS` names, in help order, the module that registers each
top-level command; a module is imported only when one of its commands runs (or help lists
them), so ``engram version`` or ``engram search`` never import torch.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # (not typing's: a piped search imports as little as it can)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from engram_sdk.cli.lazy import LazyGroup

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


def build_root() -> LazyGroup:
    """The root command group; command modules are imported when first needed."""
    from engram_sdk.cli.lazy import lazy_group

    root_class = lazy_group(COMMANDS)
    return root_class(name="engram", help=HELP, no_args_is_help=True, rich_markup_mode="rich")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 on success, non-zero on any failure.

    Expected errors print one line (no traceback); usage errors print the usage. A plain
    ``engram search`` whose output is not a terminal skips the CLI framework
    (:mod:`engram_sdk.cli.fast_search`).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["search"]:
        from engram_sdk.cli.fast_search import fast_search

        code = fast_search(args[1:])
        if code is not None:
            return code
    from engram_sdk.cli.errors import run_guarded

    return run_guarded(lambda: _run_root(args))


def _run_root(args: list[str]) -> int:
    """The full CLI (typer): its own exits and usage errors become exit codes here."""
    import typer

    from engram_sdk.cli.errors import exit_code_of, print_error

    root = build_root()
    try:
        result = root.main(args=args, prog_name="engram", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print_error("aborted")
        return 1
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, …
        from typer.rich_utils import rich_format_error

        rich_format_error(exc)  # type: ignore[arg-type]
        return exc.exit_code
    return exit_code_of(result)


if __name__ == "__main__":
    sys.exit(main())
