"""Sessions under concurrent handles and bad arguments."""

import threading
from pathlib import Path

import pytest

from engram_sdk.errors import InputError
from engram_sdk.memory import Memory
from engram_sdk.sessions import Session


def test_two_live_handles_of_one_session_keep_every_turn(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        a, b = Session(mem, "t"), Session(mem, "t")
        a.append("user", "A")
        b.append("user", "B")
        a.append("assistant", "C")
    with Memory.open(uri, "r") as mem:
        turns = Session(mem, "t").turns()
    assert [(t.seq, t.content) for t in turns] == [(0, "A"), (1, "B"), (2, "C")]


def test_threads_appending_through_their_own_handles_lose_nothing() -> None:
    with Memory.open("dram://") as mem:

        def writer(name: str) -> None:
            s = Session(mem, "shared")
            for i in range(15):
                s.append("user", f"{name}-{i}")

        threads = [threading.Thread(target=writer, args=(n,)) for n in "xyz"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        turns = Session(mem, "shared").turns()
    oracle = {f"{n}-{i}" for n in "xyz" for i in range(15)}
    assert {t.content for t in turns} == oracle
    assert [t.seq for t in turns] == list(range(45))


def test_export_to_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with Memory.open("dram://") as mem:
        s = Session(mem, "s")
        s.append("user", "hello")
        with pytest.raises(InputError, match="does not exist"):
            s.export(tmp_path / "no" / "such" / "out.jsonl")
        with pytest.raises(InputError, match="does not exist"):
            Session(mem, "never").export(tmp_path / "out.jsonl")
        assert s.export(tmp_path / "out.jsonl") == 1
        assert (tmp_path / "out.jsonl").read_text().count("\n") == 2


def test_import_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    from engram_sdk.sessions import import_session

    with Memory.open("dram://") as mem, pytest.raises(InputError, match="cannot read"):
        import_session(mem, tmp_path / "missing.jsonl")


def test_sessions_adds_and_ingests_in_threads_never_deadlock(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    for i in range(20):
        (root / f"d{i}.txt").write_text(f"document {i} docmarker{i}x\n")
    with Memory.open("dram://") as mem:
        errors: list[BaseException] = []

        def run(work) -> None:
            try:
                work()
            except BaseException as exc:
                errors.append(exc)

        def turns() -> None:
            s = Session(mem, "busy")
            for i in range(20):
                s.append("user", f"turn {i} turnmarker{i}x")

        def adds() -> None:
            for i in range(20):
                mem.add(f"note {i} notemarker{i}x", source="notes")

        def ingests() -> None:
            for _ in range(3):
                mem.ingest(root, progress=False, batch_bytes=64)

        threads = [threading.Thread(target=run, args=(w,)) for w in (turns, adds, ingests)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)  # a deadlock would leave a thread alive
        assert not any(t.is_alive() for t in threads) and errors == []
        assert len(Session(mem, "busy").turns()) == 20
        assert all(mem.search(f"notemarker{i}x", k=1) for i in range(20))
        assert all(mem.search(f"docmarker{i}x", k=1) for i in range(20))
