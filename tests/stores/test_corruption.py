"""Hundreds of seeded corruptions per backend: every read is the committed bytes or a named error.

Readers run in a forked child, so a reader killed by a signal is seen (and fails the test).
The default run tries a sample of seeds; ``-m slow`` runs the full sweep.
"""

import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import StoreError, open_store

from .corruptions import (
    CORRECT,
    NAMED_ERROR,
    WRONG_DATA,
    classify,
    corrupt,
    corrupt_lmdb_tree,
    run_in_child,
    run_in_children,
)

ROWS, DIM = 3000, 256  # 1 KiB rows: 3 LMDB blocks, 3 MB of rows
BACKENDS = ["lmdb", "shards", "dram"]
SAMPLE, SWEEP = 24, 176  # 200 seeds per backend in all


def committed() -> tuple[np.ndarray, dict[bytes, bytes]]:
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    records = {b"rec%04d" % i: rng.bytes(int(rng.integers(1, 3000))) for i in range(300)}
    return rows, records


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rows, records = committed()
    folders = {}
    for backend in BACKENDS:
        folder = tmp_path_factory.mktemp("pristine") / backend
        with open_store(f"{backend}://{folder}", "w") as s:
            s.create_table("t", ROWS, DIM)
            s.scatter("t", np.arange(ROWS), rows)
            items = list(records.items())
            s.put_many("ns", items[:150])
            s.put_many("ns", items[150:])  # two commits: LMDB has stale pages, shards two segments
        folders[backend] = folder
    return folders


def read_everything(uri: str, folder: Path) -> tuple[int, str]:
    rows, records = committed()
    try:
        with open_store(uri, "r") as s:
            for start in range(0, ROWS, 1000):  # small gathers: no thread pool in a forked child
                ids = np.arange(start, min(ROWS, start + 1000))
                if not np.array_equal(s.gather("t", ids), rows[ids]):
                    return WRONG_DATA, f"rows {start}.. differ"
            keys = sorted(records)
            if s.get_many("ns", keys) != [records[k] for k in keys]:
                return WRONG_DATA, "get_many differs"
            if dict(s.scan("ns")) != records:
                return WRONG_DATA, "scan differs"
    except Exception as exc:
        return classify(exc, folder)
    return CORRECT, "ok"


def damaged_read(backend: str, pristine: Path, folder: Path, seed: int, damage) -> tuple[int, str]:
    """In a child: copy the pristine store, damage it, read everything back, clean up."""
    shutil.copytree(pristine, folder)
    what = damage(folder, seed)
    code, message = read_everything(f"{backend}://{folder}", folder)
    shutil.rmtree(folder)
    return code, f"{what}: {message}"


def check_seeds(
    backend: str, pristine: Path, tmp_path: Path, seeds: range, damage=corrupt, matter: int = 2
) -> None:
    jobs = {
        seed: partial(damaged_read, backend, pristine, tmp_path / f"s{seed}", seed, damage)
        for seed in seeds
    }
    outcomes: dict[int, int] = {}
    for seed, (code, message) in sorted(run_in_children(jobs).items()):
        assert code in (CORRECT, NAMED_ERROR), f"seed {seed}: exit {code}\n{message}"
        outcomes[code] = outcomes.get(code, 0) + 1
    assert len(outcomes) and sum(outcomes.values()) == len(seeds)
    assert outcomes.get(NAMED_ERROR, 0) > len(seeds) // matter  # the corruptions matter


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampled_corruptions_are_named_or_harmless(
    backend: str, pristine: dict[str, Path], tmp_path: Path
) -> None:
    check_seeds(backend, pristine[backend], tmp_path, range(SAMPLE))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_corruption_sweep(backend: str, pristine: dict[str, Path], tmp_path: Path) -> None:
    check_seeds(backend, pristine[backend], tmp_path, range(SAMPLE, SAMPLE + SWEEP))


def test_lmdb_btree_page_corruptions_are_named_or_harmless(
    pristine: dict[str, Path], tmp_path: Path
) -> None:
    """Meta, branch and leaf pages: what LMDB itself would trip on, never a signal here."""
    check_seeds("lmdb", pristine["lmdb"], tmp_path, range(SAMPLE), corrupt_lmdb_tree, 4)


@pytest.mark.slow
def test_lmdb_btree_page_sweep(pristine: dict[str, Path], tmp_path: Path) -> None:
    seeds = range(SAMPLE, SAMPLE + SWEEP)
    check_seeds("lmdb", pristine["lmdb"], tmp_path, seeds, corrupt_lmdb_tree, 4)


def test_pristine_stores_read_back_correctly(pristine: dict[str, Path]) -> None:
    for backend, folder in pristine.items():
        code, message = run_in_child(read_everything, f"{backend}://{folder}", folder)
        assert code == CORRECT, message
        with pytest.raises(StoreError):
            open_store(f"{backend}://{folder / 'absent'}", "r")
