"""A Memory on each backend, corrupted underneath: searches return what they did, or a named error.

Only the public ``Memory`` API is used; readers run in forked children (see corruptions.py).
"""

import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from engram_sdk.memory import Memory

from .corruptions import CORRECT, NAMED_ERROR, classify, corrupt, run_in_children

BACKENDS = ["lmdb", "shards", "dram"]
QUERIES = ["alpha river 17", "the quiet harbor", "def compute_total", "zebra 4242", "nothing here"]
SAMPLE, SWEEP = 12, 188  # 200 seeds per backend in all


def documents() -> dict[str, str]:
    rng = np.random.default_rng(11)
    words = ["alpha", "river", "quiet", "harbor", "zebra", "lamp", "stone", "north", "glass"]
    docs = {}
    for d in range(12):
        lines = [
            " ".join(rng.choice(words, 8)) + f" {int(rng.integers(0, 5000))}" for _ in range(120)
        ]
        lines[d * 7] = f"the quiet harbor holds alpha river {d + 10} and zebra 4242"
        docs[f"doc{d}.txt"] = "\n".join(lines)
    docs["calc.py"] = "def compute_total(xs):\n    return sum(xs)\n" * 30
    return docs


def search_all(uri: str) -> list[list[dict]]:
    with Memory.open(uri, "r") as mem:
        return [[h.model_dump() for h in mem.search(q, k=5)] for q in QUERIES]


@pytest.fixture(scope="module")
def memories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list]]:
    out = {}
    for backend in BACKENDS:
        folder = tmp_path_factory.mktemp("mem") / backend
        with Memory.open(f"{backend}://{folder}", "a") as mem:
            for source, text in documents().items():
                mem.add(text, source=source)
        out[backend] = (folder, search_all(f"{backend}://{folder}"))
        assert any(out[backend][1])  # the queries find something to lose
    return out


def read_memory(uri: str, folder: Path, expected: list) -> tuple[int, str]:
    try:
        got = search_all(uri)
    except Exception as exc:
        return classify(exc, folder)
    return (CORRECT, "ok") if got == expected else (4, f"searches differ: {got} != {expected}")


def damaged_search(
    backend: str, pristine: Path, folder: Path, seed: int, expected: list
) -> tuple[int, str]:
    """In a child: copy the pristine memory, damage it, search it, clean up."""
    shutil.copytree(pristine, folder)
    what = corrupt(folder, seed)
    code, message = read_memory(f"{backend}://{folder}", folder, expected)
    shutil.rmtree(folder)
    return code, f"{what}: {message}"


def check(backend: str, memories: dict, tmp_path: Path, seeds: range) -> None:
    pristine, expected = memories[backend]
    jobs = {
        seed: partial(damaged_search, backend, pristine, tmp_path / f"m{seed}", seed, expected)
        for seed in seeds
    }
    results = run_in_children(jobs)
    assert sorted(results) == list(seeds)
    for seed, (code, message) in sorted(results.items()):
        assert code in (CORRECT, NAMED_ERROR), f"seed {seed}: exit {code}\n{message}"
    assert sum(code == NAMED_ERROR for code, _ in results.values()) > len(seeds) // 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_corrupted_memories_answer_right_or_name_the_file(
    backend: str, memories: dict, tmp_path: Path
) -> None:
    check(backend, memories, tmp_path, range(SAMPLE))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_corruption_sweep(backend: str, memories: dict, tmp_path: Path) -> None:
    check(backend, memories, tmp_path, range(SAMPLE, SAMPLE + SWEEP))
