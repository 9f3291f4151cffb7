"""The recall cache never answers from a scope that changed: after every add or delete (by
this process or another) a cached recall equals one computed afresh."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engram_sdk.llm.openai_http import OpenAIBackend
from engram_sdk.llm.recall import Recalled, recall_passages
from engram_sdk.llm.recall_cache import RecallCache
from engram_sdk.memory import Memory

QUESTIONS = [
    "Which file defines class HeronVault?",
    "Where is rotate_vault_code defined?",
    "What does the ferry timetable say?",
]


@pytest.fixture(scope="module")
def backend() -> Iterator[OpenAIBackend]:
    # counts tokens (cl100k) and never connects: recall only counts
    b = OpenAIBackend("http://127.0.0.1:9/v1", model="unused")
    yield b
    b.close()


def _recall(backend: OpenAIBackend, mem: Memory, q: str, cache: RecallCache | None) -> Recalled:
    return recall_passages(
        backend, mem, query=q, scope="default", budget=400, context="focus", cache=cache
    )


def _same(a: Recalled, b: Recalled) -> bool:
    return (a.block, [c.label for c in a.citations], a.tokens) == (
        b.block,
        [c.label for c in b.citations],
        b.tokens,
    )


def test_a_cached_recall_equals_a_fresh_one_after_every_add_and_delete(
    backend: OpenAIBackend, tmp_path: Path
) -> None:
    cache = RecallCache()
    with Memory.open(f"lmdb://{tmp_path / 'mem'}") as mem:
        mem.add("The ferry timetable: boats leave at 07:45.\n", source="ferry.md")
        steps = [
            lambda: mem.add("class HeronVault:\n    code = 'QX'\n", source="heron.py"),
            lambda: mem.add("def rotate_vault_code(v):\n    return v\n", source="rotate.py"),
            lambda: mem.add("class HeronVault(Base):\n    pass\n", source="heron2.py"),
            lambda: mem.delete(source="heron.py"),
            lambda: mem.add("ferry timetable changed: 08:15\n", source="ferry2.md"),
        ]
        for step in [lambda: None, *steps]:
            step()
            for q in QUESTIONS:
                first = _recall(backend, mem, q, cache)
                again = _recall(backend, mem, q, cache)  # unchanged scope: from the cache
                fresh = _recall(backend, mem, q, None)
                assert _same(first, fresh), q
                assert _same(again, fresh), q
        # the cache was used (one miss then one hit per question and state)
        assert cache.hits == cache.misses == len(QUESTIONS) * (len(steps) + 1)
        labels = [c.label for c in _recall(backend, mem, QUESTIONS[0], cache).citations]
        assert labels and all("heron2.py" in label for label in labels)


WRITER = """
import sys
from engram_sdk.memory import Memory
with Memory.open(sys.argv[1]) as mem:
    mem.add("class HeronVault:\\n    code = 'QX'\\n", source="late.py")
"""


def test_an_add_committed_by_another_process_is_seen_through_the_cache(
    backend: OpenAIBackend, tmp_path: Path
) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        mem.add("The ferry timetable: boats leave at 07:45.\n", source="ferry.md")
    cache = RecallCache()
    with Memory.open(uri, mode="r") as mem:
        before = _recall(backend, mem, QUESTIONS[0], cache)
        assert not any("late.py" in c.source for c in before.citations)
        subprocess.run([sys.executable, "-c", WRITER, uri], check=True, timeout=120)
        after = _recall(backend, mem, QUESTIONS[0], cache)
        assert _same(after, _recall(backend, mem, QUESTIONS[0], None))
        assert any(c.source == "late.py" for c in after.citations)
