"""Memory: recall against a brute-force oracle, scopes, incremental ingest, walker rules, crashes."""

import multiprocessing as mp
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import StoreLockedError

from engram_sdk.errors import InputError
from engram_sdk.memory import Memory
from engram_sdk.memory.fold import fold

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "theta",
    "kappa",
    "lambda",
    "sigma",
    "omega",
    "river",
    "stone",
    "cloud",
    "engine",
    "vector",
    "table",
    "shard",
    "commit",
    "ledger",
]


def corpus(seed: int, n_files: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    files = {}
    for i in range(n_files):
        lines = [
            " ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(rng.integers(5, 40))
        ]
        files[f"doc{i}.txt"] = "\n".join(lines) + "\n"
    return files


def test_phrase_search_finds_exactly_the_passages_an_oracle_finds(tmp_path: Path) -> None:
    files = corpus(0, 30)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with Memory.open("dram://") as mem:
        mem.ingest(tmp_path, progress=False)
        rng = np.random.default_rng(1)
        for _ in range(25):
            text = files[f"doc{rng.integers(0, 30)}.txt"].splitlines()
            line = text[rng.integers(0, len(text))].split()
            phrase = " ".join(line[: min(len(line), 3)])
            oracle = {
                str(tmp_path / n)
                for n, t in files.items()
                if fold(phrase) in fold(t.replace("\n", " \n"))
            }
            hits = mem.search(phrase, k=1000)
            phrase_sources = {h.source for h in hits if h.phrase_match}
            # every file containing the phrase on one line is found; nothing that lacks it is a phrase match
            on_a_line = {
                str(tmp_path / n)
                for n, t in files.items()
                if any(fold(phrase) in fold(ln) for ln in t.splitlines())
            }
            assert on_a_line <= phrase_sources <= oracle
            assert hits[0].phrase_match and all(h.score <= hits[0].score for h in hits)


def test_hits_carry_lines_and_snippets(tmp_path: Path) -> None:
    src = "import os\n\n\ndef load_table(path):\n    return open(path).read()\n"
    with Memory.open("dram://") as mem:
        mem.add(src, source="pkg/io.py")
        (hit,) = mem.search("def load_table", k=1)
        assert (hit.source, hit.line_start, hit.snippet) == (
            "pkg/io.py",
            4,
            "def load_table(path):",
        )
        assert mem.search("LOAD_TABLE(path)", k=1)[0].source == "pkg/io.py"  # case folded
        assert mem.search("LOAD_TABLE(path)", exact_case=True) == []


def test_scopes_never_leak() -> None:
    with Memory.open("dram://") as mem:
        mem.add("alice's secret is the violet umbrella", source="a", scope="alice")
        mem.add("bob keeps a green lantern", source="b", scope="bob")
        assert mem.search("violet umbrella", scope="bob") == []
        assert mem.search("green lantern", scope="alice") == []
        assert mem.search("violet umbrella", scope="alice")[0].scope == "alice"
        assert "violet" not in mem.context("violet umbrella", scope="bob").text
        mem.delete(scope="alice")
        assert mem.search("violet umbrella", scope="alice") == []
        assert mem.search("green lantern", scope="bob")


def test_context_respects_the_budget() -> None:
    with Memory.open("dram://") as mem:
        for i in range(20):
            mem.add(
                f"note {i}: the ledger commit protocol uses two phases.\n" * 5, source=f"n{i}.md"
            )
        ctx = mem.context("ledger commit protocol", max_tokens=120)
        assert 0 < ctx.tokens <= 120
        assert mem.tokenizer.count(ctx.text) == ctx.tokens
        assert ctx.passages and "[n" in ctx.text


def test_incremental_ingest(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("def alpha_function():\n    return 1\n")
    (root / "b.py").write_text("def beta_function():\n    return 2\n")
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        first = mem.ingest(root, progress=False)
        assert first.files_indexed == 2
    size_before = (tmp_path / "mem" / "data.mdb").stat().st_size
    mtime_before = (tmp_path / "mem" / "data.mdb").stat().st_mtime_ns
    with Memory.open(uri) as mem:
        again = mem.ingest(root, progress=False)
        assert (again.files_indexed, again.files_unchanged) == (0, 2)
    assert (tmp_path / "mem" / "data.mdb").stat().st_mtime_ns == mtime_before  # wrote nothing
    assert (tmp_path / "mem" / "data.mdb").stat().st_size == size_before
    (root / "a.py").write_text("def gamma_function():\n    return 3\n")
    (root / "b.py").unlink()
    with Memory.open(uri) as mem:
        third = mem.ingest(root, progress=False)
        assert (third.files_indexed, third.files_removed) == (1, 1)
        assert mem.search("alpha_function") == []
        assert mem.search("beta_function") == []
        assert mem.search("gamma_function")[0].source == str(root / "a.py")


def test_walker_behaves_like_ripgrep(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("unique_git_marker")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "sub" / ".gitignore").write_text("secret.txt\n")
    (root / ".engramignore").write_text("skipme.md\n")
    (root / "keep.txt").write_text("unique_keep_marker here\n")
    (root / "app.log").write_text("unique_log_marker\n")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("unique_build_marker\n")
    (root / "sub" / "secret.txt").write_text("unique_secret_marker\n")
    (root / "sub" / "deep" / "ok.txt").write_text("unique_deep_marker\n")
    (root / "skipme.md").write_text("unique_skip_marker\n")
    (root / "blob.bin").write_bytes(b"unique_binary_marker\x00\x01")
    (root / "big.txt").write_text("unique_big_marker " * 100_000)
    (root / "bad.txt").write_bytes(b"unique_bad_utf8_marker \xff\xfe\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("unique_outside_marker\n")
    os.symlink(outside, root / "link.txt")
    os.mkfifo(root / "fifo")
    with Memory.open("dram://") as mem:
        report = mem.ingest(root, progress=False, max_file_bytes=1 << 20)
        found = {
            m
            for m in (
                "keep",
                "log",
                "build",
                "secret",
                "deep",
                "skip",
                "binary",
                "big",
                "outside",
                "git",
                "bad_utf8",
            )
            if mem.search(f"unique_{m}_marker")
        }
    assert found == {"keep", "deep", "bad_utf8"}
    assert report.skipped_binary == ["blob.bin"] and report.skipped_too_large == ["big.txt"]
    assert report.skipped_outside_links == [str(root / "link.txt")]
    assert report.skipped_special == [str(root / "fifo")]


def _slow_ingest(uri: str, root: str) -> None:
    with Memory.open(uri) as mem:
        mem.ingest(root, progress=False, batch_bytes=2000)


def test_killed_ingest_leaves_memory_usable_and_a_rerun_completes(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    files = corpus(3, 120)
    for name, text in files.items():
        (root / name).write_text(text + f"marker_{name.split('.')[0]}_end\n")
    uri = f"lmdb://{tmp_path / 'mem'}"
    ctx = mp.get_context("fork")
    child = ctx.Process(target=_slow_ingest, args=(uri, str(root)))
    child.start()
    time.sleep(1.0)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    with Memory.open(uri) as mem:
        partial = sum(
            any(h.phrase_match for h in mem.search(f"marker_doc{i}_end")) for i in range(120)
        )
        report = mem.ingest(root, progress=False)
        assert report.files_unchanged + report.files_indexed == 120
        assert all(mem.search(f"marker_doc{i}_end") for i in range(120))
    assert partial < 120 or report.files_unchanged == 120


def _hold(uri: str, ready: "mp.Event", done: "mp.Event") -> None:
    with Memory.open(uri):
        ready.set()
        done.wait(30)


def test_second_writer_gets_a_clear_error(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    ctx = mp.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(uri, ready, done))
    child.start()
    assert ready.wait(30)
    try:
        with pytest.raises(StoreLockedError, match="locked by pid"):
            Memory.open(uri)
    finally:
        done.set()
        child.join()


def test_readers_are_thread_safe(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        for i in range(50):
            mem.add(f"entry {i} stone river number_{i}_tag\n", source=f"s{i}")
    with Memory.open(uri, "r") as mem:
        errors: list[str] = []

        def worker(offset: int) -> None:
            for i in range(offset, 50, 4):
                hits = mem.search(f"number_{i}_tag", k=1)
                if not hits or hits[0].source != f"s{i}":
                    errors.append(f"s{i}")

        threads = [threading.Thread(target=worker, args=(o,)) for o in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


@pytest.mark.parametrize("bad", ["", "a\x00b", "x" * 5000, "bad\udcffsurrogate", "line\nbreak"])
def test_hostile_sources_and_scopes_are_rejected(bad: str) -> None:
    with Memory.open("dram://") as mem:
        with pytest.raises(InputError):
            mem.add("text", source=bad)
        if len(bad) <= 200:
            with pytest.raises(InputError):
                mem.add("text", source="ok", scope=bad)
