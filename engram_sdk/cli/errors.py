"""How every ``engram`` command fails: one ``error:`` line on stderr and an exit code.

Expected errors (bad input, a missing file) exit 2 without a traceback; anything else exits
1 with one line naming the exception (``ENGRAM_DEBUG=1`` re-raises it for a traceback).
Messages are user text and printed verbatim. This module imports neither typer nor rich,
so the lightweight entry points (:mod:`engram_sdk.cli.fast_search`) share it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from engram_sdk.errors import EngramError

FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr (bold red on a terminal), the message verbatim."""
    tag = "\x1b[1;31merror:\x1b[0m" if sys.stderr.isatty() else "error:"
    sys.stderr.write(f"{tag} {message}\n")
    sys.stderr.flush()


def exit_code_of(result: object) -> int:
    """The process exit code for what a command returned (an int is an exit code)."""
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return 0


def run_guarded(command: Callable[[], object]) -> int:
    """Run ``command`` and turn what it returned or raised into an exit code."""
    try:
        return exit_code_of(command())
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        if os.environ.get("ENGRAM_DEBUG") and not isinstance(exc, EngramError | FILE_ERRORS):
            raise
        code, message = describe_error(exc)
        print_error(message)
        return code


def describe_error(exc: Exception) -> tuple[int, str]:
    """Exit code and one-line message for an exception: 2 for expected errors (bad input, a
    missing file), 1 for anything else."""
    if isinstance(exc, EngramError):
        return 2, str(exc)
    if isinstance(exc, FILE_ERRORS):
        return 2, f"{exc.strerror or exc}: {exc.filename}"
    return 1, f"{type(exc).__name__}: {exc} (set ENGRAM_DEBUG=1 for a traceback)"
