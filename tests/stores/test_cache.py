"""The hot-row cache: same rows as the store (numpy oracle), bounded size, honest hit counts."""

from pathlib import Path

import numpy as np
import pytest
import torch
from engram_sdk.stores import CachedStore, open_store

from .conftest import uri_for


def test_cached_gathers_match_a_numpy_oracle_through_writes(
    file_backend: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    rows, dim = 3000, 8
    oracle = rng.standard_normal((rows, dim)).astype(np.float32)
    with open_store(uri_for(file_backend, tmp_path), "w", cache_rows=200) as store:
        assert isinstance(store, CachedStore)
        store.create_table("t", rows, dim)
        store.scatter("t", np.arange(rows), oracle)
        popular = rng.permutation(rows)[:150]
        for step in range(30):
            ids = np.concatenate([rng.choice(popular, 400), rng.integers(0, rows, 100)])
            np.testing.assert_array_equal(store.gather("t", ids), oracle[ids])
            if step % 5 == 4:  # writes go through and cached copies are refreshed
                w = rng.choice(popular, 20, replace=False)
                new = rng.standard_normal((20, dim)).astype(np.float32)
                store.scatter("t", w, new)
                oracle[w] = new
    with open_store(uri_for(file_backend, tmp_path), "r") as reopened:
        np.testing.assert_array_equal(reopened.gather("t", np.arange(rows)), oracle)


def test_a_working_set_that_fits_always_hits(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    oracle = rng.standard_normal((5000, 4)).astype(np.float32)
    with open_store(uri_for("lmdb", tmp_path), "w", cache_rows=300) as store:
        store.create_table("t", 5000, 4)
        store.scatter("t", np.arange(5000), oracle)
        hot = rng.permutation(5000)[:300]
        store.gather("t", hot)
        store.reset_stats()
        for _ in range(10):
            ids = rng.choice(hot, 1000)
            np.testing.assert_array_equal(store.gather("t", ids), oracle[ids])
        assert (store.hits, store.misses) == (10_000, 0)
        store.gather("t", rng.integers(0, 5000, 200))  # cold rows evict cold-or-hot slots
        np.testing.assert_array_equal(store.gather("t", hot), oracle[hot])


def test_hit_counts_and_capacity(tmp_path: Path) -> None:
    with open_store(uri_for("shards", tmp_path), "w") as raw:
        raw.create_table("t", 1000, 4)
        raw.fill("t", lambda a, b: np.arange(a * 4, b * 4, dtype=np.float32).reshape(-1, 4))
        cached = CachedStore(raw, capacity=10)
        ids = np.arange(10)
        cached.gather("t", ids)
        assert (cached.hits, cached.misses) == (0, 10)
        cached.gather("t", ids)
        assert (cached.hits, cached.misses) == (10, 10) and cached.hit_rate == 0.5
        cached.reset_stats()
        cached.gather("t", np.arange(100, 200))  # 100 new rows through a 10-row cache
        cached.reset_stats()
        got = cached.gather("t", np.arange(100, 200))
        np.testing.assert_array_equal(got, np.arange(400, 800, dtype=np.float32).reshape(-1, 4))
        assert cached.hits <= 10 and cached.hits + cached.misses == 100


def test_cached_gather_fills_a_torch_buffer_in_place(tmp_path: Path) -> None:
    with open_store(uri_for("lmdb", tmp_path), "w", cache_rows=64) as store:
        store.create_table("e", 100, 16, "bfloat16")
        ref = torch.randn(100, 16).to(torch.bfloat16)
        store.scatter("e", np.arange(100), ref)
        ids = np.array([3, 3, 99, 0])
        for _ in range(2):  # a miss pass, then a hit pass
            out = torch.empty(4, 16, dtype=torch.bfloat16)
            ptr = out.data_ptr()
            assert store.gather("e", ids, out=out) is out and out.data_ptr() == ptr
            assert torch.equal(out, ref[ids])
        assert store.hits == 4


@pytest.mark.parametrize("bad", [[-1], [100], [0.5]])
def test_cache_rejects_bad_ids(tmp_path: Path, bad: list) -> None:
    from engram_sdk.errors import InputError

    with open_store(uri_for("shards", tmp_path), "w", cache_rows=8) as store:
        store.create_table("t", 100, 4)
        with pytest.raises(InputError):
            store.gather("t", np.array(bad))


def test_clock_gives_referenced_rows_a_second_chance(tmp_path: Path) -> None:
    with open_store(uri_for("shards", tmp_path), "w") as raw:
        raw.create_table("t", 1000, 2)
        cached = CachedStore(raw, capacity=10)
        cached.gather("t", np.arange(10))
        cached.gather("t", np.arange(8))  # rows 0-7 referenced, 8-9 not
        cached.gather("t", np.arange(100, 104))  # 4 misses: 8, 9 go first, then 0, 1
        cached.reset_stats()
        cached.gather("t", np.arange(2, 8))
        assert (cached.hits, cached.misses) == (6, 0)
        cached.gather("t", np.array([0, 1, 8, 9]))
        assert cached.misses == 4


def test_concurrent_gathers_of_one_table_each_get_their_own_rows(tmp_path: Path) -> None:
    import threading

    rng = np.random.default_rng(11)
    rows, dim = 4000, 16
    oracle = rng.standard_normal((rows, dim)).astype(np.float32)
    with open_store(uri_for("shards", tmp_path), "w", cache_rows=300) as store:
        store.create_table("t", rows, dim)
        store.scatter("t", np.arange(rows), oracle)
        wrong: list[int] = []

        def reader(seed: int) -> None:  # a prefetch and a fetch of the same table at once
            local = np.random.default_rng(seed)
            for _ in range(60):
                ids = local.integers(0, rows, 2000)  # far more than the cache: constant eviction
                if not np.array_equal(store.gather("t", ids), oracle[ids]):
                    wrong.append(seed)

        threads = [threading.Thread(target=reader, args=(s,)) for s in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wrong == []
        assert store.hits + store.misses == 6 * 60 * 2000
