"""Rows read in place with a hot-row cache: slots from the cache's device index, hits from the
cache, misses from the table, against a numpy oracle (the Triton kernel interpreted)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from engram_sdk.errors import InputError
from engram_sdk.table_runtime.hot_cache import HotRowCache
from engram_sdk.table_runtime.hot_gather import find_slots, gather_in_place
from engram_sdk.table_runtime.hot_index import EMPTY, WAYS, BucketIndex, bucket_of

ROWS, DIM = 5_000, 24


def table() -> torch.Tensor:
    return torch.randn(ROWS, DIM, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)


def store_rows(rows: torch.Tensor):
    return lambda ids: rows[torch.from_numpy(ids)]


def filled_cache(rows: torch.Tensor, cached: np.ndarray, capacity: int = 64) -> HotRowCache:
    cache = HotRowCache(capacity, table_rows=ROWS, dim=DIM, dtype=torch.bfloat16)
    cache.gather(np.sort(cached), store_rows(rows))  # free slots take them all
    return cache


def indexed(cache: HotRowCache) -> dict[int, int]:
    """The (id -> slot) entries of the cache's device index, read back."""
    ids, slots = cache.device_index()
    return {i: s for i, s in zip(ids.tolist(), slots.tolist(), strict=True) if i != EMPTY}


def test_device_index_holds_every_cached_id_at_its_slot_and_follows_changes() -> None:
    rows = table()
    cached = np.random.default_rng(1).choice(ROWS, 40, replace=False)
    cache = filled_cache(rows, cached)
    where = indexed(cache)
    assert sorted(where) == sorted(cached.tolist()) and cache.index.unindexed == 0
    for i, s in where.items():
        assert torch.equal(cache.rows[s], rows[i])  # each slot holds its id's row
    first = cache.device_index()[0].data_ptr()
    cache.invalidate(np.sort(cached)[:5])  # the same tensors, rewritten
    assert cache.device_index()[0].data_ptr() == first
    assert sorted(indexed(cache)) == sorted(cached.tolist())[5:]


def test_bucket_index_leaves_out_what_a_full_bucket_cannot_hold() -> None:
    index = BucketIndex(8, torch.device("cpu"))
    ids = np.arange(10_000, dtype=np.int64)
    same = ids[bucket_of(ids, index.buckets) == 0][: WAYS + 2]  # one bucket, 2 too many
    index.add(same, np.arange(len(same)))
    entries = dict(zip(index.ids.tolist(), index.slots.tolist(), strict=True))
    assert [entries.get(int(i)) for i in same[:WAYS]] == list(range(WAYS))
    assert index.unindexed == 2 and int(same[-1]) not in entries
    index.remove(same[:1])  # frees one way: the next id fits again
    index.add(same[-1:], np.array([9]))
    assert dict(zip(index.ids.tolist(), index.slots.tolist(), strict=True))[int(same[-1])] == 9


def test_find_slots_matches_the_indexed_entries() -> None:
    rows = table()
    rng = np.random.default_rng(2)
    cache = filled_cache(rows, rng.choice(ROWS, 50, replace=False))
    where = indexed(cache)
    flat = torch.from_numpy(rng.integers(0, ROWS, 300))
    flat[:50] = torch.tensor(sorted(where))  # every cached id asked at least once
    want = [where.get(i, -1) for i in flat.tolist()]
    assert find_slots(*cache.device_index(), flat).tolist() == want


@pytest.mark.parametrize("with_cache", [False, True])
def test_gather_gives_the_tables_rows_and_counts_hits(with_cache: bool) -> None:
    rows = table()
    rng = np.random.default_rng(3)
    cache = filled_cache(rows, rng.choice(ROWS, 60, replace=False))
    flat = torch.from_numpy(np.concatenate([cache.cached_ids()[:30], rng.integers(0, ROWS, 70)]))
    counts = torch.zeros(2, dtype=torch.int64)
    index = cache.device_index() if with_cache else None
    got = gather_in_place(rows, flat, index, cache.rows if with_cache else None, counts=counts)
    assert torch.equal(got, rows[flat])
    hits = int(np.isin(flat.numpy(), list(indexed(cache))).sum())
    assert counts.tolist() == ([hits, 100] if with_cache else [0, 100])
    assert with_cache is False or hits >= 30


def test_gather_takes_hits_from_the_cache_not_the_table() -> None:
    """A cached row differing from the table's shows where hits are read (never in use: the
    cache holds byte copies; here it tells the two sources apart)."""
    rows = table()
    cache = filled_cache(rows, np.array([7, 9]))
    cache.rows[indexed(cache)[7]] = 1.0  # id 7's copy
    got = gather_in_place(rows, torch.tensor([7, 9, 11]), cache.device_index(), cache.rows)
    assert torch.equal(got[0], torch.ones(DIM, dtype=torch.bfloat16))
    assert torch.equal(got[1:], rows[[9, 11]])


def test_warm_admits_the_most_frequent_rows_up_to_the_limit() -> None:
    rows = table()
    ids = np.arange(100, 200, dtype=np.int64)
    counts = np.arange(1, 101)  # id 199 most frequent
    cache = HotRowCache(32, table_rows=ROWS, dim=DIM, dtype=torch.bfloat16)
    asked: list[np.ndarray] = []

    def fetch(missing: np.ndarray) -> torch.Tensor:
        asked.append(missing)
        return rows[torch.from_numpy(missing)]

    assert cache.warm(ids, counts, fetch, limit=20, chunk=8) == 20
    assert cache.cached_ids().tolist() == list(range(180, 200))
    assert [len(a) for a in asked] == [8, 8, 4]  # read in chunks
    held = indexed(cache)
    assert sorted(held) == list(range(180, 200))
    assert torch.equal(cache.rows[list(held.values())], rows[list(held)])
    assert cache.warm(ids, counts, fetch) == 12  # up to the capacity; cached ids not re-read
    assert cache.cached_ids().tolist() == list(range(168, 200))
    with pytest.raises(InputError, match="distinct ids"):
        cache.warm(ids[::-1].copy(), counts, fetch)


def test_a_frozen_cache_admits_nothing_and_refuses_to_drop_cached_rows() -> None:
    rows = table()
    cache = filled_cache(rows, np.array([1, 2, 3]), capacity=8)
    with cache.frozen():
        got = cache.gather(np.array([1, 4, 5]), store_rows(rows))
        assert torch.equal(got, rows[[1, 4, 5]])
        assert cache.cached_ids().tolist() == [1, 2, 3]  # 4 and 5 not admitted
        assert cache.invalidate(np.array([6])) == 0  # not cached: nothing to drop
        with pytest.raises(InputError, match="frozen"):
            cache.invalidate(np.array([2]))
    cache.gather(np.array([4]), store_rows(rows))
    assert 4 in cache.cached_ids()
    assert cache.invalidate(np.array([2])) == 1


TRITON_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import torch
    from engram_sdk.table_runtime.hot_cache import HotRowCache
    from engram_sdk.table_runtime.hot_gather import gather_torch, gather_triton

    g = torch.Generator().manual_seed(0)
    for dim, dtype, launch in [(64, torch.bfloat16, (4, 1)), (24, torch.float32, (16, 4))]:
        rows = torch.randn(3000, dim, generator=g).to(dtype)
        cache = HotRowCache(64, table_rows=3000, dim=dim, dtype=dtype)
        cached = np.sort(np.random.default_rng(1).choice(3000, 50, replace=False))
        cache.gather(cached, lambda ids: rows[torch.from_numpy(ids)])
        flat = torch.cat([torch.from_numpy(cached[:20]), torch.randint(0, 3000, (45,), generator=g)])
        for index, c in ((None, None), (cache.device_index(), cache.rows)):
            want_counts, got_counts = torch.zeros(2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)
            want = gather_torch(rows, flat, index, c, torch.empty(65, dim, dtype=dtype), want_counts)
            got = gather_triton(rows, flat, index, c, torch.empty(65, dim, dtype=dtype), got_counts, *launch)
            assert torch.equal(got, want) and torch.equal(want, rows[flat]), (dim, index is None)
            assert got_counts.tolist() == want_counts.tolist(), (got_counts, want_counts)
            assert index is None or got_counts[0] >= 20
    print("ok")
    """
)


def test_triton_gather_matches_the_torch_path_interpreted() -> None:
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", TRITON_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_the_in_place_kernel_option_is_checked() -> None:
    from engram_sdk.model import build_model, get_preset

    from engram_sdk.table_runtime import attach_tables
    from engram_sdk.table_runtime.hot_gather import triton_available

    model = build_model(get_preset("tiny", tokenizer=None, vocab_size=300), seed=0)
    with pytest.raises(InputError, match="in_place_kernel"):
        attach_tables(model, "dram://", in_place_kernel="cuda")
    with attach_tables(model, "dram://", hot_rows=64) as runtime:  # CPU: the torch path
        assert {t.in_place_kernel for t in runtime.tables.values()} == {"torch"}
    if not triton_available():
        with pytest.raises(InputError, match="needs Triton"):
            attach_tables(model, "dram://", in_place_kernel="triton")
