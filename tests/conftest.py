"""Shared pytest setup: an isolated per-session cache/data home for every test run."""

import os
import tempfile

import pytest

_HOME = tempfile.mkdtemp(prefix="engram-test-home-")
os.environ.setdefault("ENGRAM_HOME", _HOME)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests where no CUDA device is present."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
