"""Writers: savepoints, one writer per store on every backend (races, forks), readers that follow."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import CachedStore, Store, StoreLockedError, open_store

from engram_sdk.errors import InputError

FILE_BACKENDS = ["dram", "lmdb", "shards"]  # dram:///folder is a file backend too


def folder_uri(backend: str, tmp_path: Path) -> str:
    return f"{backend}://{tmp_path / backend}"


def test_nested_transaction_is_a_savepoint(store: Store) -> None:
    store.create_table("t", 4, 1)
    with store.transaction():
        store.put("ns", b"outer", b"1")
        store.scatter("t", [0], np.ones((1, 1), np.float32))
        with pytest.raises(RuntimeError), store.transaction():
            store.put("ns", b"inner", b"2")
            store.put("ns", b"outer", b"changed")
            store.scatter("t", [1], np.ones((1, 1), np.float32))
            store.create_table("u", 2, 2)
            raise RuntimeError("inner fails")
        assert store.get("ns", b"inner") is None and "u" not in store.tables()
        with store.transaction():  # an inner block that succeeds joins the outer commit
            store.put("ns", b"second", b"3")
    assert dict(store.scan("ns")) == {b"outer": b"1", b"second": b"3"}
    assert store.gather("t", [0, 1]).ravel().tolist() == [1.0, 0.0]
    assert "u" not in store.tables()


def test_options_a_backend_cannot_honour_are_errors(tmp_path: Path) -> None:
    for uri in (f"lmdb://{tmp_path / 'l'}", f"shards://{tmp_path / 's'}"):
        with pytest.raises(InputError, match="pinned"):
            open_store(uri, "a", pinned=True)
    with pytest.raises(InputError, match="verify_reads"):
        open_store("dram://", "a", verify_reads=False)


def test_the_cache_is_a_store(tmp_path: Path) -> None:
    with open_store(f"lmdb://{tmp_path / 'l'}", "a", cache_rows=8) as s:
        assert isinstance(s, Store) and isinstance(s, CachedStore)
        s.create_table("t", 20, 2)
        with s.transaction():
            s.scatter("t", [3], np.full((1, 2), 7, np.float32))
            assert s.gather("t", [3, 4]).tolist() == [[7, 7], [0, 0]]
        assert s.gather("t", [3]).tolist() == [[7, 7]]
        assert s.info().tables[0].name == "t" and s.verify().ok


def _write_once(uri: str, key: bytes, start: "mp.Event", results: "mp.Queue") -> None:
    start.wait(30)
    try:
        with open_store(uri, "a") as s:
            existing = dict(s.scan("ns"))
            s.put("ns", key, b"x" * 1000)
            time.sleep(0.05)
            s.put("ns", key + b"-2", b"y")
        results.put((key, "ok", len(existing)))
    except StoreLockedError:
        results.put((key, "locked", 0))


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_racing_writers_never_lose_a_commit(backend: str, tmp_path: Path) -> None:
    uri = folder_uri(backend, tmp_path)
    ctx = mp.get_context("fork")
    committed: set[bytes] = set()
    for rnd in range(6):
        start, results = ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_write_once, args=(uri, b"r%d-w%d" % (rnd, i), start, results))
            for i in range(2)
        ]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        outcomes = [results.get(timeout=5) for _ in procs]
        committed |= {key for key, what, _ in outcomes if what == "ok"}
        committed |= {key + b"-2" for key, what, _ in outcomes if what == "ok"}
    with open_store(uri, "r") as s:
        assert set(dict(s.scan("ns"))) == committed  # every acknowledged write is there


def _fork_holder(uri: str, report: "mp.Queue") -> None:
    store = open_store(uri, "a")
    store.put("ns", b"parent", b"1")
    pid = os.fork()
    if pid == 0:  # the grandchild: inherits the store, must not hold or use the lock
        try:
            store.put("ns", b"child", b"1")
            report.put("child wrote")
        except StoreLockedError as exc:
            report.put(f"refused: {exc}")
        time.sleep(60)
        os._exit(0)
    report.put(pid)
    time.sleep(60)


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_forked_children_do_not_hold_the_writer_lock(backend: str, tmp_path: Path) -> None:
    uri = folder_uri(backend, tmp_path)
    ctx = mp.get_context("fork")
    report = ctx.Queue()
    parent = ctx.Process(target=_fork_holder, args=(uri, report))
    parent.start()
    got = [report.get(timeout=30), report.get(timeout=30)]
    grandchild = next(x for x in got if isinstance(x, int))
    refusal = next(x for x in got if isinstance(x, str))
    try:
        assert refusal.startswith("refused") and f"pid {parent.pid}" in refusal
        with pytest.raises(StoreLockedError, match=rf"pid {parent.pid}"):
            open_store(uri, "a")
        os.kill(parent.pid, signal.SIGKILL)
        parent.join()
        with open_store(uri, "a") as s:  # the orphaned grandchild does not hold the lock
            assert s.get("ns", b"parent") == b"1" and s.get("ns", b"child") is None
    finally:
        os.kill(grandchild, signal.SIGKILL)


GROW = """
import sys
import numpy as np
from engram_sdk.stores import lmdb_store, open_store

lmdb_store.INITIAL_MAP = 1 << 20  # a small map, so that commits grow it often
with open_store("lmdb://" + sys.argv[1], "a") as s:
    for i in range(int(sys.argv[2])):
        s.put_many("fill", [(b"%d-%d" % (i, j), bytes(4096)) for j in range(256)])
        s.scatter("t", np.arange(64), np.full((64, 8), i + 1, np.float32))
"""

ADD_LATER = """
import sys
import numpy as np
from engram_sdk.stores import open_store

with open_store(sys.argv[1], "a") as s:
    s.create_table("late", 5, 2)
    s.scatter("late", [4], np.full((1, 2), 3, np.float32))
    s.put("new-ns", b"k", b"v")
    s.delete("ns", b"old")
"""


def test_gather_only_readers_follow_map_growth_and_new_snapshots(tmp_path: Path) -> None:
    folder = tmp_path / "l"
    with open_store(f"lmdb://{folder}", "w") as s:
        s.create_table("t", 64, 8)
    with open_store(f"lmdb://{folder}", "r") as reader:
        first = reader.env.info()["map_size"]
        # another process (py-lmdb refuses a second handle of one file in a process)
        writer = subprocess.Popen([sys.executable, "-c", GROW, str(folder), "12"])
        seen = set()
        while writer.poll() is None or not seen:
            rows = reader.gather("t", np.arange(64))  # only gathers: no other call
            assert (rows == rows[0, 0]).all()
            seen.add(float(rows[0, 0]))
        assert writer.wait() == 0
        assert reader.gather("t", [0]).tolist() == [[12.0] * 8]  # the last commit, no reopen
        assert reader.count("fill") == 12 * 256
        assert reader.env.info()["map_size"] > first


@pytest.mark.parametrize("backend", ["lmdb", "shards"])
def test_a_read_only_store_sees_later_commits_of_lmdb(backend: str, tmp_path: Path) -> None:
    uri = folder_uri(backend, tmp_path)
    with open_store(uri, "w") as s:
        s.put("ns", b"old", b"1")
    with open_store(uri, "r") as reader:
        assert reader.get("ns", b"old") == b"1"
        subprocess.run([sys.executable, "-c", ADD_LATER, uri], check=True)
        if backend == "shards":  # shards readers keep the snapshot they opened, by design
            assert reader.get("ns", b"old") == b"1"
            return
        assert reader.get("ns", b"old") is None
        assert reader.get("new-ns", b"k") == b"v" and "new-ns" in reader.namespaces()
        assert reader.gather("late", [4]).tolist() == [[3.0, 3.0]]
