"""Shared pytest setup: an isolated cache/data home per run, and an in-process CLI runner."""

import atexit
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import pytest

_HOME = tempfile.mkdtemp(prefix="engram-test-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ.setdefault("ENGRAM_HOME", _HOME)
# no warm searcher processes left behind by CLI tests (tests/cli/test_searcher.py turns it on)
os.environ.setdefault("ENGRAM_NO_DAEMON", "1")


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread: OpenMP threads spin badly when other processes share the cores."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests where no CUDA device is present."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@dataclass(frozen=True)
class CliResult:
    """What one ``engram`` call printed and how it exited (named like ``CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


CliRunner = Callable[..., CliResult]


@pytest.fixture
def engram_cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Run ``engram ARGS…`` in this process through the real entry point, ``main(argv)``.

    Same parsing, error handling and exit codes as the installed command, without the
    interpreter start and imports a subprocess pays on every call. Use a real subprocess
    where the process itself is under test (imports, signals, stdin of a terminal).
    ``env`` sets environment variables for the call; ``stdin`` is the text read from stdin.
    """
    from engram_sdk.cli.main import main

    def run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdin", io.StringIO(stdin))
            for key, value in (env or {}).items():
                patch.setenv(key, value)
            with redirect_stdout(out), redirect_stderr(err):
                code = main([str(a) for a in args])
        return CliResult(code, out.getvalue(), err.getvalue())

    return run
