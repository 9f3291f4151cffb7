"""LMDB gathers across many blocks (the memory-map fast path and its fallbacks) vs numpy."""

from pathlib import Path

import numpy as np
import pytest
import torch
from engram_sdk.stores import open_store
from engram_sdk.stores.lmdb_store import rows_per_block


@pytest.mark.parametrize(("dim", "dtype"), [(128, "float32"), (24, "float32"), (64, "bfloat16")])
def test_multi_block_gathers_follow_commits(tmp_path: Path, dim: int, dtype: str) -> None:
    rng = np.random.default_rng(dim)
    uri = f"lmdb://{tmp_path / 'l'}"
    with open_store(uri, "w") as store:
        spec = store.create_table("t", 1, dim, dtype)
        rows = 3 * rows_per_block(spec) + 17  # several blocks, a short last one
        store.create_table("big", rows, dim, dtype)
        oracle = np.zeros((rows, dim), spec.storage_dtype)
        written = np.arange(rows // 2)  # the later blocks are never written: zeros
        vals = rng.integers(0, 2**15, size=(len(written), dim)).astype(spec.storage_dtype)
        store.scatter("big", written, vals)
        oracle[written] = vals
        for step in range(6):
            ids = rng.integers(0, rows, 20_000)
            np.testing.assert_array_equal(store.gather("big", ids), oracle[ids])
            np.testing.assert_array_equal(store.gather("big", ids[:50]), oracle[ids[:50]])
            w = rng.integers(0, rows, 300)
            new = rng.integers(0, 2**15, size=(300, dim)).astype(spec.storage_dtype)
            with store.transaction():
                store.scatter("big", w, new)
                oracle[w] = new
                np.testing.assert_array_equal(store.gather("big", ids), oracle[ids])
            if step == 3:
                store.scatter("big", np.arange(rows), oracle)  # every block exists now
    with open_store(uri, "r") as reader:
        ids = rng.integers(0, rows, 30_000)
        out = torch.empty((len(ids), dim), dtype=getattr(torch, dtype))
        reader.gather("big", ids, out=out)
        np.testing.assert_array_equal(
            out.view(torch.int16 if dtype == "bfloat16" else out.dtype)
            .numpy()
            .view(spec.storage_dtype),
            oracle[ids],
        )


def test_gathers_stay_right_while_the_writer_grows_its_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engram_sdk.stores import lmdb_store

    monkeypatch.setattr(lmdb_store, "INITIAL_MAP", 1 << 20)  # grow after a few commits
    rng = np.random.default_rng(5)
    oracle = rng.standard_normal((3000, 64)).astype(np.float32)
    with open_store(f"lmdb://{tmp_path / 'l'}", "w") as store:
        store.create_table("t", 3000, 64)
        store.scatter("t", np.arange(3000), oracle)
        first = store.env.info()["map_size"]
        ids = rng.integers(0, 3000, 5000)
        for i in range(8):
            np.testing.assert_array_equal(store.gather("t", ids), oracle[ids])  # addresses cached
            store.put_many("fill", [(b"%d-%d" % (i, j), bytes(8192)) for j in range(64)])
        np.testing.assert_array_equal(store.gather("t", ids), oracle[ids])
        assert store.env.info()["map_size"] > 4 * first
