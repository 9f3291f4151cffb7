"""Frequency layouts: a permutation (every id one slot), rows read through it are bitwise the
original rows after the store is reopened, the layout is kept and checked with the store,
and on real text it puts the rows of a batch on fewer pages (oracles: numpy, a dict, sets)."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import StoreCorruptError, StoreReadOnlyError, StoreVersionError, open_store
from engram_sdk.stores.laid_out import LaidOutStore
from engram_sdk.stores.row_layout import (
    LAYOUT_NAMESPACE,
    LayoutInfo,
    RowLayout,
    laid_out_name,
    load_layout,
    save_layout,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.errors import InputError
from engram_sdk.table_runtime.layout import (
    layout_from_addresses,
    layouts_from_text,
    pages_touched,
)

ROWS, DIM = 5000, 16


@settings(max_examples=60, deadline=None)
@given(data=st.data(), rows=st.integers(1, 300))
def test_a_layout_is_a_permutation_with_the_hot_ids_first(data: st.DataObject, rows: int) -> None:
    hot = data.draw(st.lists(st.integers(0, rows - 1), unique=True, max_size=rows))
    layout = RowLayout(rows, np.asarray(hot, dtype=np.int64))
    slots = layout.slots(np.arange(rows))
    assert sorted(slots.tolist()) == list(range(rows))
    assert slots[hot].tolist() == list(range(len(hot)))
    assert layout.ids(slots).tolist() == list(range(rows))
    moved = {i for i in range(rows) if slots[i] != i}
    assert moved <= set(hot) | set(range(len(hot)))  # nothing else moves


def test_heads_read_together_are_laid_out_side_by_side() -> None:
    addresses = np.array([[10, 20, 30, 40], [11, 21, 30, 40], [10, 20, 31, 41]])
    layout = layout_from_addresses(addresses, 50, group=2)
    # groups by count, ties by first sight: (10,20) x2, (30,40) x2, (11,21), (31,41)
    assert layout.hot.tolist() == [10, 20, 30, 40, 11, 21, 31, 41]
    collided = layout_from_addresses(np.array([[1, 2], [1, 3], [1, 3]]), 5, group=2)
    assert collided.hot.tolist() == [1, 3, 2]  # (1,3) x2 first; 2 still counted
    with pytest.raises(InputError, match="group 3 must divide the 4 heads"):
        layout_from_addresses(addresses, 50, group=3)


def test_frequency_order_is_most_counted_first_ties_by_first_sight() -> None:
    seen = [7, 3, 7, 9, 3, 7, 1, 9, 0]
    layout = layout_from_addresses(np.array(seen).reshape(3, 3), 10)
    counted = Counter(seen)
    expected = sorted(counted, key=lambda i: (-counted[i], seen.index(i)))
    assert layout.hot.tolist() == expected == [7, 3, 9, 1, 0]
    assert layout_from_addresses(np.array([1, 1, 2]), 10, max_hot=1).hot.tolist() == [1]
    by_id = RowLayout.by_frequency(10, np.array([5, 2, 8]), np.array([1, 4, 1]))
    assert by_id.hot.tolist() == [2, 5, 8]


def zipf_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.permutation(ROWS)[(rng.zipf(1.3, n) - 1) % ROWS]


@pytest.mark.parametrize("backend", ["shards", "lmdb", "dram"])
def test_rows_read_through_the_layout_are_bitwise_the_original_rows(
    backend: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    oracle = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    folder = tmp_path / backend
    uri = f"{backend}://{folder}"
    with open_store(uri, "w") as store:
        store.create_table("engram.layer1", ROWS, DIM)
        store.scatter("engram.layer1", np.arange(ROWS), oracle)
        layout = layout_from_addresses(zipf_ids(rng, 20000), ROWS)
        info = save_layout(store, "engram.layer1", layout, source="zipf")
        assert info.hot_rows == layout.hot_rows > 0
    with LaidOutStore(open_store(uri, "r")) as store:  # reread from the files
        assert store.layouts["engram.layer1"].hot.tolist() == layout.hot.tolist()
        assert store.table("engram.layer1").rows == ROWS
        assert laid_out_name("engram.layer1") not in store.tables()
        for _ in range(5):
            ids = zipf_ids(rng, 700)
            got = store.gather("engram.layer1", ids)
            assert got.tobytes() == oracle[ids].tobytes()
        np.testing.assert_array_equal(store.gather("engram.layer1", np.arange(ROWS)), oracle)


def test_a_layout_can_be_written_into_another_store(tmp_path: Path) -> None:
    oracle = np.random.default_rng(1).standard_normal((ROWS, DIM)).astype(np.float32)
    with open_store("dram://") as src, open_store(f"shards://{tmp_path / 'dst'}", "w") as dst:
        src.create_table("t", ROWS, DIM)
        src.scatter("t", np.arange(ROWS), oracle)
        save_layout(src, "t", RowLayout(ROWS, np.array([4999, 3, 17])), into=dst)
        assert "t" not in dst.tables()
    with LaidOutStore(open_store(f"shards://{tmp_path / 'dst'}", "r")) as dst:
        ids = np.array([4999, 0, 1, 2, 3, 17, 2500])
        assert dst.gather("t", ids).tobytes() == oracle[ids].tobytes()


def test_a_table_without_a_layout_is_read_directly(tmp_path: Path) -> None:
    with open_store(f"shards://{tmp_path / 's'}", "w") as store:
        store.create_table("t", 10, 2)
        store.scatter("t", np.arange(10), np.arange(20, dtype=np.float32).reshape(10, 2))
        view = LaidOutStore(store)
        assert view.layouts == {} and view.gather("t", np.array([9, 0])).tolist() == [
            [18, 19],
            [0, 1],
        ]
        with pytest.raises(StoreReadOnlyError):
            view.scatter("t", np.array([0]), np.zeros((1, 2), np.float32))


@pytest.fixture
def laid_out_store(tmp_path: Path):
    store = open_store(f"shards://{tmp_path / 's'}", "w")
    store.create_table("t", 100, 2)
    save_layout(store, "t", RowLayout(100, np.array([50, 60, 1])))
    yield store
    store.close()


def test_hot_ids_that_do_not_match_the_checksum_are_named(laid_out_store) -> None:
    ids_table = laid_out_name("t") + ".ids"
    bad = np.zeros((1, 8), dtype=np.int8)
    bad[0, 0] = 61
    laid_out_store.scatter(ids_table, np.array([1]), bad)  # hot ids now [50, 61, 1]
    with pytest.raises(StoreCorruptError, match="row_layout/t: hot ids do not match"):
        LaidOutStore(laid_out_store)


def test_a_newer_layout_format_is_refused_and_a_broken_record_named(laid_out_store) -> None:
    info = LayoutInfo.model_validate_json(laid_out_store.get(LAYOUT_NAMESPACE, b"t"))
    newer = info.model_copy(update={"format_version": 99}).model_dump_json().encode()
    laid_out_store.put(LAYOUT_NAMESPACE, b"t", newer)
    with pytest.raises(StoreVersionError, match="format 99 is newer"):
        load_layout(laid_out_store, "t")
    laid_out_store.put(LAYOUT_NAMESPACE, b"t", b"{not json")
    with pytest.raises(StoreCorruptError, match="unreadable row layout record"):
        load_layout(laid_out_store, "t")


def test_bad_layouts_are_refused_with_what_was_expected() -> None:
    with pytest.raises(InputError, match="distinct"):
        RowLayout(10, np.array([1, 1]))
    with pytest.raises(InputError, match=r"\[0, 10\)"):
        RowLayout(10, np.array([10]))
    with pytest.raises(InputError, match=r"\[0, 4\)"):
        layout_from_addresses(np.array([5]), 4)
    with open_store("dram://") as store:
        store.create_table("t", 5, 1)
        with pytest.raises(InputError, match="layout is for 6 rows"):
            save_layout(store, "t", RowLayout(6, np.array([0])))


@pytest.mark.parametrize("row_bytes", [64, 128, 96, 5000])
def test_pages_touched_counts_distinct_pages(row_bytes: int) -> None:
    slots = np.random.default_rng(2).integers(0, 10_000, 500)
    pages = set()
    for s in slots.tolist():
        pages.update(range(s * row_bytes // 4096, ((s + 1) * row_bytes - 1) // 4096 + 1))
    assert pages_touched(slots, row_bytes) == len(pages)


def test_a_layout_counted_on_real_text_puts_later_batches_on_fewer_pages() -> None:
    import sysconfig

    import torch
    from engram_sdk.model import build_model, get_preset

    from engram_sdk.corpus import read_token_ids

    cfg = get_preset("tiny", tokenizer=None, engram_table_size=[200_003, 200_003])
    model = build_model(cfg)  # (tokenizer=None: ids hashed as they are, no canonical map)
    source = Path(sysconfig.get_paths()["stdlib"]) / "email" / "_header_value_parser.py"
    ids = read_token_ids([source])
    counted_part, later_part = ids[:16_000], ids[16_000:24_000]
    layouts = layouts_from_text(model, counted_part, chunk_tokens=7_000)
    whole = model.engram_addresses(torch.from_numpy(counted_part)[None])
    heads = cfg.engram_heads_per_ngram
    for layer, layout in layouts.items():  # chunked counting = counting the text as one piece
        assert set(layout.hot.tolist()) == set(whole[layer].reshape(-1).tolist())
        groups = whole[layer].reshape(-1, heads).numpy()  # one N-gram order's heads per row
        slots = layout.slots(groups)
        side_by_side = (slots.max(1) - slots.min(1) == heads - 1).mean()
        assert side_by_side > 0.97  # (a row shared by two N-grams sits with the first one)
        seen = Counter(map(tuple, groups.tolist()))
        first_seen = {g: i for i, g in reversed(list(enumerate(map(tuple, groups.tolist()))))}
        top = sorted(seen, key=lambda g: (-seen[g], first_seen[g]))[:20]
        assert layout.slots(np.asarray(top)).tolist() == [
            list(range(i * heads, (i + 1) * heads)) for i in range(20)
        ]
    later = model.engram_addresses(torch.from_numpy(later_part)[None])
    for layer, layout in layouts.items():
        batches = [
            later[layer][0, i : i + 2_000].reshape(-1).numpy() for i in range(0, 8_000, 2_000)
        ]
        plain = sum(pages_touched(b, 64) for b in batches)
        laid_out = sum(pages_touched(layout.slots(b), 64) for b in batches)
        assert laid_out < 0.9 * plain, (layer, laid_out, plain)
