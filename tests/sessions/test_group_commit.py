"""Group commit: writes queued together commit together, a failing one alone is undone, and
every write whose future completed is in the file when it is reopened."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engram_sdk.memory import Memory
from engram_sdk.sessions import GroupCommit, Session


def test_queued_writes_commit_together_and_a_failing_one_is_undone_alone(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    lock = threading.Lock()
    with Memory.open(uri) as mem:
        commits = GroupCommit(mem, lock=lock)

        def turn(i: int) -> None:
            Session(mem, f"s{i}").append("user", f"question number {i}")

        def failing() -> None:
            Session(mem, "bad").append("user", "never kept")
            raise ValueError("this write fails")

        with lock:  # the writer waits for the lock: everything below queues behind it
            futures = [commits.submit(lambda i=i: turn(i)) for i in range(10)]
            bad = commits.submit(failing)
            futures += [commits.submit(lambda i=i: turn(i)) for i in range(10, 12)]
        for f in futures:
            f.result(timeout=60)
        with pytest.raises(ValueError, match="this write fails"):
            bad.result(timeout=60)
        assert commits.writes == 12
        assert commits.commits <= 2  # the first write alone at most, then all the rest
        commits.close()
        with pytest.raises(RuntimeError):
            commits.submit(lambda: None)
    with Memory.open(uri, mode="r") as mem:  # reread from the file
        for i in range(12):
            assert [t.content for t in Session(mem, f"s{i}").turns()] == [f"question number {i}"]
        assert Session(mem, "bad").turns() == []
        assert not any(h.source == "session:bad" for h in mem.search("never kept", k=5))
        assert any(h.source == "session:s3" for h in mem.search("question number 3", k=5))
