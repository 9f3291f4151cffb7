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
