"""Re-ingest after edits, deletes, renames and touches, checked against a dict of the
folder's files (and ``rg``): the memory's sources, passages and search hits are those of
the folder as it is now, with one process or a pool of small bundles."""

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from engram_sdk.memory import Memory, prepare
from engram_sdk.memory.fold import fold
from engram_sdk.memory.ingest import check_ingest_args, ingest_path

WORDS = ["alpha", "Beta", "gamma_delta", "def", "return", "(", ")", ":", "\n", "\n\n", "é"]
QUERIES = [
    "gamma_delta",
    "marker_",
    "é",
    "Beta",
    "a_d",
    "):",
    "x",
]  # in one line: passages hold whole lines


def _text(rng: random.Random, tag: str) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 300)))
    return f"{body}\nmarker_{tag}_end\n"


def _mutate(rng: random.Random, root: Path, oracle: dict[str, str], step: int) -> None:
    names = sorted(oracle)
    for name in rng.sample(names, 3):  # edit
        oracle[name] = _text(rng, f"{step}e{name[-6:-3]}")
    gone = rng.choice(names)  # delete
    (root / gone).unlink()
    del oracle[gone]
    old = rng.choice(sorted(oracle))  # rename (same bytes, new name)
    new = f"sub{step}/renamed{step}.py"
    (root / new).parent.mkdir(exist_ok=True)
    os.rename(root / old, root / new)
    oracle[new] = oracle.pop(old)
    oracle[f"new{step}.py"] = _text(rng, f"n{step}")  # add
    for name, text in oracle.items():
        path = root / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    os.utime(root / rng.choice(sorted(oracle)))  # touch: new mtime, same bytes


def _check(mem: Memory, root: Path, oracle: dict[str, str]) -> None:
    sources = {s.source for s in mem.sources("default")}
    assert sources == {str(root / n) for n in oracle}
    sid = mem.scope_id("default")
    for info in mem.search("marker_", k="all"):
        (p,) = mem.passages(sid, [info.passage_id])
        data = (root / Path(p.source).relative_to(root)).read_bytes()
        assert data[p.byte_start : p.byte_end].decode() == p.text
    for query in QUERIES:
        hits = {h.source for h in mem.search(query, k="all") if h.phrase_match}
        expected = {str(root / n) for n, t in oracle.items() if fold(query) in fold(t)}
        assert hits == expected, query
        plain = query.isascii() and not any(c.isspace() for c in query)  # rg folds case only
        if shutil.which("rg") and plain:
            rg = subprocess.run(
                ["rg", "-F", "-i", "-l", "--", query, str(root)], capture_output=True
            )
            assert hits == set(rg.stdout.decode().split()), query


@pytest.mark.parametrize("workers", [1, 2])
def test_reingest_matches_the_folder_after_every_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(prepare, "BUNDLE_FILES", 4)  # many bundles, merged in order
    rng = random.Random(workers)
    root = tmp_path / "src"
    root.mkdir()
    oracle = {f"m{i:03d}.py": _text(rng, f"{i}") for i in range(24)}
    for name, text in oracle.items():
        (root / name).write_text(text)
    resolved = check_ingest_args(root, 1 << 20, 1 << 20)
    with Memory.open(f"lmdb://{tmp_path / 'mem'}") as mem:
        for step in range(4):
            report = ingest_path(mem, resolved, "default", False, 1 << 20, 2048, workers=workers)
            assert report.files_seen == len(oracle)
            _check(mem, root, oracle)
            _mutate(rng, root, oracle, step)
