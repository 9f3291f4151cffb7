"""Ingest's postings written from per-bundle key runs: segments capped, ascending disjoint id
ranges with exact passage counts, and every posting equal to an oracle built from the
stored texts with Python sets."""

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from engram_sdk.memory import Memory, prepare, purge
from engram_sdk.memory.fold import fold
from engram_sdk.memory.ingest import check_ingest_args, ingest_path
from engram_sdk.memory.postings import decode_all

WORDS = ["alpha", "Beta", "gamma_delta", "def f():", "return x", "é", "\n", "\n\n", "  "]


def _oracle_keys(texts: dict[int, str]) -> set[int]:
    """``trigram << 32 | pid`` of every 3-byte window of fold(text) + two NULs."""
    keys = set()
    for pid, text in texts.items():
        b = fold(text).encode("utf-8", "surrogatepass") + b"\x00\x00"
        keys |= {(int.from_bytes(b[i : i + 3], "big") << 32) | pid for i in range(len(b) - 2)}
    return keys


@pytest.mark.parametrize(("cap", "workers"), [(150, 1), (150, 2), (4000, 2), (1 << 30, 1)])
def test_segments_from_runs_hold_exactly_the_passages_trigrams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: int, workers: int
) -> None:
    monkeypatch.setattr(prepare, "BUNDLE_FILES", 3)  # many runs per commit
    monkeypatch.setattr(prepare, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(purge, "SEGMENT_CAP", cap)  # groups of runs, and runs cut alone
    rng = random.Random(cap + workers)
    root = tmp_path / "src"
    root.mkdir()
    for i in range(40):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 400)))
        (root / f"f{i:02d}.py").write_text(f"{body}\nmarker_{i}\n")
    resolved = check_ingest_args(root, 1 << 20, 1 << 20)
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as mem:
        ingest_path(mem, resolved, "default", False, 1 << 20, 6000, workers)
        sid = mem.scope_id("default")
        every = range(mem.manifest.next_pid)
        texts = {p.pid: p.text for p in mem.passages(sid, every) if p is not None}
        segs = mem.index.table(sid).segments
        assert mem.index.table(sid).passages == len(texts)
        held: set[int] = set()
        for s in segs:
            keys = decode_all(mem.index._postings(sid, s))
            pids = set((keys & np.uint64(0xFFFFFFFF)).tolist())
            assert s.postings == len(keys)
            assert s.passages == len(pids) == sum(s.lo <= p <= s.hi for p in texts)
            assert min(pids) == s.lo and max(pids) == s.hi
            held |= set(keys.tolist())
        assert all(a.hi < b.lo for a, b in itertools.pairwise(segs))
        if cap < 1 << 30:
            biggest_passage = max(len(fold(t).encode()) + 2 for t in texts.values())
            assert all(s.postings <= 2 * cap + biggest_passage for s in segs)
            assert len(segs) > 2
        assert held == _oracle_keys(texts)
        for i in range(40):
            hits = {h.source for h in mem.search(f"marker_{i}\n", k="all") if h.phrase_match}
            assert hits == {str(root / f"f{i:02d}.py")}


def test_a_failure_inside_a_batch_rolls_back_that_batch_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bundles are written into the batch's open transaction as they come: a failure in
    the second batch leaves exactly the first batch's files (oracle: the files on disk),
    every stored passage indexed; a rerun completes the folder."""
    monkeypatch.setattr(prepare, "BUNDLE_FILES", 2)
    root = tmp_path / "src"
    root.mkdir()
    for i in range(12):
        (root / f"f{i:02d}.py").write_text(f"value_{i} = 'rollback_marker'\n" * 50)
    resolved = check_ingest_args(root, 1 << 20, 1 << 20)
    size = (root / "f00.py").stat().st_size
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as mem:
        real = mem.write_passages
        calls = []

        def failing(*args, **kwargs):
            calls.append(1)
            if len(calls) == 4:  # the second bundle of the second batch (2 bundles a batch)
                raise RuntimeError("disk full")
            return real(*args, **kwargs)

        monkeypatch.setattr(mem, "write_passages", failing)
        with pytest.raises(RuntimeError, match="disk full"):
            ingest_path(mem, resolved, "default", False, 1 << 20, 4 * size, 1)
        sources = {s.source for s in mem.sources("default")}
        assert sources == {str(root / f"f{i:02d}.py") for i in range(4)}
        found = {h.source for h in mem.search("rollback_marker", k="all")}
        assert found == sources
        sid = mem.scope_id("default")
        live = [p for p in mem.passages(sid, range(mem.manifest.next_pid)) if p is not None]
        assert {p.source for p in live} == sources
        monkeypatch.setattr(mem, "write_passages", real)
        ingest_path(mem, resolved, "default", False, 1 << 20, 4 * size, 1)
        found = {h.source for h in mem.search("rollback_marker", k="all")}
        assert found == {str(root / f"f{i:02d}.py") for i in range(12)}
