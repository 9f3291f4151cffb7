"""Incremental ingest reads only files whose stat changed; a process pool gives the same
memory as one process."""

import os
import time
from pathlib import Path

import numpy as np

from engram_sdk.memory import Memory
from engram_sdk.memory.ingest import check_ingest_args, ingest_path

HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


def _write(root: Path, name: str, text: str, mtime_ns: int = HOUR_AGO_NS) -> None:
    (root / name).write_text(text)
    os.utime(root / name, ns=(mtime_ns, mtime_ns))


def _markers(mem: Memory, names: list[str]) -> set[str]:
    return {n for n in names if any(h.phrase_match for h in mem.search(f"marker_{n}_end", k=3))}


def test_only_files_whose_stat_changed_are_read(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    oracle = {f"f{i}": f"text of file {i}\nmarker_f{i}_end\n" for i in range(60)}
    for name, text in oracle.items():
        _write(root, f"{name}.txt", text)
    with Memory.open("dram://") as mem:
        first = mem.ingest(root, progress=False)
        assert (first.files_indexed, first.files_hashed) == (60, 60)
        again = mem.ingest(root, progress=False)
        assert (again.files_hashed, again.files_unchanged, again.files_indexed) == (0, 60, 0)
        # change two, touch one (same bytes, new mtime), remove one, add one
        for name in ("f1", "f2"):
            oracle[name] = f"rewritten\nmarker_{name}x_end\n"
            _write(root, f"{name}.txt", oracle[name], HOUR_AGO_NS + 10**9)
        os.utime(root / "f3.txt", ns=(HOUR_AGO_NS + 10**9,) * 2)
        (root / "f4.txt").unlink()
        del oracle["f4"]
        oracle["new"] = "brand new\nmarker_new_end\n"
        _write(root, "new.txt", oracle["new"])
        third = mem.ingest(root, progress=False)
        assert (third.files_hashed, third.files_indexed, third.files_removed) == (4, 3, 1)
        assert third.files_unchanged == 57
        names = [f"f{i}" for i in range(60)] + ["f1x", "f2x", "new"]
        expected = {n for n in names if any(f"marker_{n}_end" in t for t in oracle.values())}
        assert _markers(mem, names) == expected


def test_a_process_pool_gives_the_same_passages_as_one_process(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    root = tmp_path / "src"
    root.mkdir()
    words = ["alpha", "beta", "def", "return", "class", "x", "(", ")", ":", "\n", "\n\n"]
    for i in range(40):
        body = " ".join(rng.choice(words, size=int(rng.integers(50, 400))))
        (root / f"m{i}.py").write_text(body + f"\nmarker_m{i}_end\n")
    resolved = check_ingest_args(root, 1 << 20, 1 << 20)
    results = []
    for workers in (1, 2):
        with Memory.open("dram://") as mem:
            report = ingest_path(mem, resolved, "default", False, 1 << 20, 4096, workers=workers)
            sid = mem.scope_id("default")
            assert sid is not None
            passages = mem.passages(sid, range(1, report.passages + 1))
            results.append(
                (report.files_indexed, [(p.source, p.line_start, p.text) for p in passages if p])
            )
    assert results[0] == results[1] and results[0][0] == 40
