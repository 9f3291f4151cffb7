"""SIGKILL a writer at random moments: the store always reopens at a committed prefix."""

import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import open_store

ROWS, DIM = 2000, 16


def writer(uri: str, acks: "mp.Queue[int]") -> None:
    with open_store(uri, "a") as store:
        if "t" not in store.tables():
            with store.transaction():
                store.create_table("t", ROWS, DIM)
                store.create_table("b", ROWS, DIM, "bfloat16")
                store.create_table("i", ROWS, DIM, "int8")
        last = store.get("meta", b"last")
        n = int(last) + 1 if last is not None else 0
        while True:
            with store.transaction():
                store.scatter("t", np.arange(ROWS), np.full((ROWS, DIM), n, np.float32))
                store.scatter("b", np.arange(ROWS), np.full((ROWS, DIM), n, np.uint16))
                store.scatter("i", np.arange(ROWS), np.full((ROWS, DIM), n % 128, np.int8))
                store.put_many("log", [(b"n%06d" % n, b"%d" % n)])
                store.put("meta", b"last", b"%d" % n)
            acks.put(n)
            n += 1


def check_prefix(uri: str, acked: int) -> int:
    with open_store(uri, "r") as store:
        assert store.verify().ok, store.verify().problems
        last_raw = store.get("meta", b"last")
        if last_raw is None:
            assert acked < 0
            return -1
        last = int(last_raw)
        assert last >= acked, f"commit {acked} was acknowledged but the store holds only {last}"
        rows = store.gather("t", np.arange(ROWS))
        assert (rows == last).all(), "torn batch: rows from different commits"
        assert (store.gather("b", np.arange(ROWS)) == last).all(), "torn bfloat16 rows"
        assert (store.gather("i", np.arange(ROWS)) == last % 128).all(), "torn int8 rows"
        assert [k for k, _ in store.scan("log")] == [b"n%06d" % i for i in range(last + 1)]
        return last


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["dram", "lmdb", "shards"])
def test_sigkill_leaves_a_committed_prefix(backend: str, tmp_path: Path) -> None:
    uri = f"{backend}://{tmp_path / 'store'}"
    ctx = mp.get_context("fork")
    rng = random.Random(1234)
    last = -1
    for _kill in range(20):
        acks: mp.Queue[int] = ctx.Queue()
        child = ctx.Process(target=writer, args=(uri, acks))
        child.start()
        time.sleep(rng.uniform(0.05, 0.5))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        acked = last
        while not acks.empty():
            acked = max(acked, acks.get())
        now = check_prefix(uri, acked)
        assert now >= last
        last = now
    assert last > 0, "the writer never committed"
