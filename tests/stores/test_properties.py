"""Hypothesis: random operation sequences on every backend agree with a numpy/dict oracle, reopen included."""

import shutil
import tempfile
from pathlib import Path

import numpy as np
from engram_sdk.stores import open_store
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

ROWS, DIM = 64, 4
keys = st.binary(min_size=1, max_size=3)


class StoreMachine(RuleBasedStateMachine):
    backend = "dram"

    @initialize()
    def setup(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.uri = (
            f"dram://{self.tmp / 'd'}"
            if self.backend == "dram"
            else f"{self.backend}://{self.tmp / 's'}"
        )
        self.store = open_store(self.uri, "w")
        self.store.create_table("t", ROWS, DIM)
        self.rows = np.zeros((ROWS, DIM), np.float32)
        self.records: dict[bytes, bytes] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(ids=st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=10), seed=st.integers(0, 99))
    def scatter(self, ids: list[int], seed: int) -> None:
        vals = np.random.default_rng(seed).standard_normal((len(ids), DIM)).astype(np.float32)
        self.store.scatter("t", ids, vals)
        for i, v in zip(ids, vals, strict=True):
            self.rows[i] = v

    @rule(items=st.lists(st.tuples(keys, st.binary(max_size=8)), max_size=5))
    def put(self, items: list[tuple[bytes, bytes]]) -> None:
        self.store.put_many("r", items)
        self.records.update(items)

    @rule(ks=st.lists(keys, max_size=4))
    def delete(self, ks: list[bytes]) -> None:
        assert self.store.delete_many("r", ks) == len(set(ks) & set(self.records))
        for k in ks:
            self.records.pop(k, None)

    @rule(
        items=st.lists(st.tuples(keys, st.binary(max_size=4)), min_size=1, max_size=4),
        ids=st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=4),
        fail=st.booleans(),
    )
    def transaction(self, items: list[tuple[bytes, bytes]], ids: list[int], fail: bool) -> None:
        vals = np.full((len(ids), DIM), 9.5, np.float32)
        try:
            with self.store.transaction():
                self.store.put_many("r", items)
                self.store.scatter("t", ids, vals)
                if fail:
                    raise KeyError("abort")
        except KeyError:
            return
        self.records.update(items)
        self.rows[ids] = 9.5

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = open_store(self.uri, "a")

    @rule(prefix=st.binary(max_size=2))
    def scan_prefix(self, prefix: bytes) -> None:
        want = sorted((k, v) for k, v in self.records.items() if k.startswith(prefix))
        assert list(self.store.scan("r", prefix)) == want
        assert self.store.count("r", prefix) == len(want)

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "store"):
            return
        np.testing.assert_array_equal(self.store.gather("t", np.arange(ROWS)), self.rows)
        assert dict(self.store.scan("r")) == self.records


def _machine(backend: str) -> type[RuleBasedStateMachine]:
    cls = type(f"{backend.title()}Machine", (StoreMachine,), {"backend": backend})
    cls.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
    return cls


TestDram = _machine("dram").TestCase
TestLmdb = _machine("lmdb").TestCase
TestShards = _machine("shards").TestCase
