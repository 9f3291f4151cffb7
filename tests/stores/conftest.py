"""Fixtures: one store per backend, in a fresh temporary folder."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from engram_sdk.stores import Store, open_store

BACKENDS = ["dram", "lmdb", "shards"]


def uri_for(backend: str, folder: Path) -> str:
    return "dram://" if backend == "dram" else f"{backend}://{folder / backend}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[Store]:
    s = open_store(uri_for(backend, tmp_path), "a")
    yield s
    s.close()


@pytest.fixture(params=["lmdb", "shards"])
def file_backend(request: pytest.FixtureRequest) -> str:
    return request.param
