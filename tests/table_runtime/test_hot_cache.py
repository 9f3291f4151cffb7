"""The hot-row cache serves exactly the table's rows, reads only its misses from the store,
keeps frequent rows over one-off ones, and follows store writes (oracle: the numpy table)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.errors import InputError
from engram_sdk.table_runtime.hot_cache import HotRowCache

ROWS, DIM = 2000, 8


@pytest.fixture(scope="module")
def table() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).standard_normal((ROWS, DIM), np.float32))


def zipf_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.zipf(1.2, n) - 1) % ROWS


class Store:
    """The table behind the cache, recording what was read from it."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows, self.reads = rows, []

    def fetch(self, ids: np.ndarray) -> torch.Tensor:
        self.reads.append(ids.copy())
        return self.rows[torch.from_numpy(ids)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gathered_rows_are_bitwise_the_table_rows(table: torch.Tensor, dtype) -> None:
    rows = table.to(dtype)
    store = Store(rows)
    cache = HotRowCache(64, table_rows=ROWS, dim=DIM, dtype=dtype)
    rng = np.random.default_rng(1)
    for _ in range(25):
        ids = zipf_ids(rng, 300)
        got = cache.gather(ids, store.fetch)
        assert got.dtype == dtype
        assert torch.equal(
            got.view(torch.int16 if dtype == torch.bfloat16 else torch.int32),
            rows[ids].view(torch.int16 if dtype == torch.bfloat16 else torch.int32),
        )
    assert cache.stats.hits > 0  # the comparison covered rows served from the cache


def test_only_missing_rows_are_read_and_the_counts_say_so(table: torch.Tensor) -> None:
    store = Store(table)
    cache = HotRowCache(50, table_rows=ROWS, dim=DIM)
    rng = np.random.default_rng(2)
    expected_hits = requested = 0
    for _ in range(20):
        ids = zipf_ids(rng, 400)
        held = set(cache.cached_ids().tolist())
        before = len(store.reads)
        cache.gather(ids, store.fetch)
        wanted = set(ids.tolist())
        read = store.reads[before] if len(store.reads) > before else np.empty(0, np.int64)
        assert set(read.tolist()) == wanted - held  # misses only, each once
        assert len(read) == len(set(read.tolist())) and np.all(np.diff(read) > 0)
        expected_hits += sum(i in held for i in ids.tolist())
        requested += len(ids)
        assert len(cache) <= 50
    assert cache.stats.hits == expected_hits
    assert cache.stats.rows_requested == requested
    assert cache.stats.rows_from_store == requested - expected_hits
    assert cache.stats.hit_rate == pytest.approx(expected_hits / requested)


def test_zero_capacity_reads_every_row_from_the_store(table: torch.Tensor) -> None:
    store = Store(table)
    cache = HotRowCache(0, table_rows=ROWS, dim=DIM)
    ids = np.array([5, 5, 7])
    assert torch.equal(cache.gather(ids, store.fetch), table[ids])
    assert cache.gather(ids, store.fetch).shape == (3, DIM)
    assert cache.stats.hits == 0 and [r.tolist() for r in store.reads] == [[5, 7], [5, 7]]


def test_frequent_rows_stay_through_a_burst_of_one_off_rows(table: torch.Tensor) -> None:
    hot = np.arange(100, 120)
    cache = HotRowCache(len(hot), table_rows=ROWS, dim=DIM)
    rng = np.random.default_rng(3)
    for _ in range(10):  # the hot rows come back every batch; cold ones once each
        cold = rng.choice(np.arange(200, ROWS), 60, replace=False)
        cache.gather(np.concatenate([np.repeat(hot, 3), cold]), Store(table).fetch)
    assert set(cache.cached_ids().tolist()) == set(hot.tolist())
    cache.gather(np.arange(200, 1200), Store(table).fetch)  # a burst of 1000 new rows
    assert set(cache.cached_ids().tolist()) == set(hot.tolist())
    store = Store(table)
    cache.gather(hot, store.fetch)
    assert store.reads == []  # all served from the cache


def test_invalidate_and_refresh_follow_rows_rewritten_in_the_store(table: torch.Tensor) -> None:
    rows = table.clone()
    store = Store(rows)
    cache = HotRowCache(30, table_rows=ROWS, dim=DIM)
    ids = np.arange(30)
    cache.gather(ids, store.fetch)
    assert len(cache) == 30
    rows[:10] += 1.0  # training wrote rows 0..9 and 20..29
    rows[20:30] -= 1.0
    assert cache.invalidate(np.arange(10)) == 10
    assert cache.refresh(np.arange(20, 30), rows[20:30]) == 10
    assert torch.equal(cache.gather(ids, store.fetch), rows[ids])
    assert store.reads[-1].tolist() == list(range(10))  # only the dropped rows were reread


def test_bad_ids_capacity_and_fetch_results_are_named(table: torch.Tensor) -> None:
    cache = HotRowCache(4, table_rows=ROWS, dim=DIM)
    with pytest.raises(InputError, match=r"\[0, 2000\)"):
        cache.gather(np.array([1, ROWS]), Store(table).fetch)
    with pytest.raises(InputError, match="1-D integer"):
        cache.gather(np.array([0.5]), Store(table).fetch)
    with pytest.raises(InputError, match="expected \\(2, 8\\)"):
        cache.gather(np.array([1, 2]), lambda ids: table[:1])
    with pytest.raises(InputError, match="capacity must be an int >= 0, got -1"):
        HotRowCache(-1, table_rows=ROWS, dim=DIM)


@pytest.mark.gpu
def test_rows_served_from_gpu_memory_are_bitwise_the_table_rows(table: torch.Tensor) -> None:
    store = Store(table)
    cache = HotRowCache(64, table_rows=ROWS, dim=DIM, device="cuda")
    rng = np.random.default_rng(4)
    for _ in range(10):
        ids = zipf_ids(rng, 300)
        assert torch.equal(cache.gather(ids, store.fetch).cpu(), table[ids])


@settings(max_examples=25, deadline=None)
@given(
    capacity=st.integers(0, 40),
    batches=st.lists(st.lists(st.integers(0, 99), min_size=1, max_size=60), min_size=1, max_size=8),
)
def test_any_sequence_of_batches_matches_the_table(capacity: int, batches: list[list[int]]) -> None:
    rows = torch.arange(100 * 3, dtype=torch.float32).reshape(100, 3)
    cache = HotRowCache(capacity, table_rows=100, dim=3)
    for batch in batches:
        ids = np.asarray(batch)
        assert torch.equal(cache.gather(ids, lambda m: rows[torch.from_numpy(m)]), rows[ids])
        assert len(cache) <= capacity


def test_rows_fetched_counts_each_distinct_miss_once(table: torch.Tensor) -> None:
    store = Store(table)
    cache = HotRowCache(8, table_rows=ROWS, dim=DIM)
    cache.gather(np.array([3, 3, 4, 9, 9, 9]), store.fetch)
    cache.gather(np.array([3, 11, 11]), store.fetch)
    assert cache.stats.rows_fetched == sum(len(r) for r in store.reads) == 4


def test_a_big_cache_keeps_its_hot_rows_through_sampled_eviction() -> None:
    rows = 300_000
    table = torch.arange(rows, dtype=torch.float64)[:, None]
    cache = HotRowCache(70_000, table_rows=rows, dim=1, dtype=torch.float64)  # > exact limit
    hot = np.arange(0, 140_000, 2)  # 70,000 hot ids fill the cache, seen twice
    fetch = lambda ids: table[torch.from_numpy(ids)]  # noqa: E731
    cache.gather(np.repeat(hot, 2), fetch)
    assert len(cache) == 70_000
    cold = np.arange(150_000, 250_000)  # 100,000 one-off ids contest sampled victims
    assert torch.equal(cache.gather(cold, fetch), table[cold])
    assert set(cache.cached_ids().tolist()) == set(hot.tolist())
    cache.invalidate(hot[:10])
    assert len(cache) == 69_990
    cache.gather(np.repeat(cold[:10], 5), fetch)  # freed slots are filled first
    assert len(cache) == 70_000 and set(cold[:10]) <= set(cache.cached_ids().tolist())


def test_already_distinct_sorted_ids_take_the_short_path_with_the_same_rows(
    table: torch.Tensor,
) -> None:
    store = Store(table)
    cache = HotRowCache(16, table_rows=ROWS, dim=DIM)
    rng = np.random.default_rng(5)
    for _ in range(6):
        ids = np.unique(zipf_ids(rng, 200))  # what a runtime passes after deduplication
        assert torch.equal(cache.gather(ids, store.fetch), table[ids])
    assert cache.stats.hits > 0 and cache.stats.rows_requested == cache.stats.hits + sum(
        len(r) for r in store.reads
    )
