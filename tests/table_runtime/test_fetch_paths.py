"""Fetch paths: dedup policy per backend, the threaded row copy, tables built without rows."""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from engram_sdk.model import build_model, get_preset
from engram_sdk.stores import open_store
from engram_sdk.stores.blocks import take_rows

from engram_sdk.errors import InputError
from engram_sdk.table_runtime import StoreTable, TrainableStoreTable, attach_tables
from engram_sdk.table_runtime.addresses import BatchAddresses


def tiny():
    return get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.uint16])
def test_take_rows_equals_numpy_take(dtype: type) -> None:
    rng = np.random.default_rng(0)
    source = (rng.standard_normal((5000, 7)) * 50).astype(dtype)
    idx = rng.integers(0, 5000, 20000)  # above the threaded threshold, with duplicates
    out = np.empty((len(idx), 7), dtype)
    take_rows(source, idx, out)
    np.testing.assert_array_equal(out, source[idx])


def test_take_rows_handles_a_strided_output() -> None:
    source = np.arange(40000, dtype=np.float32).reshape(20000, 2)
    idx = np.arange(19999, -1, -1)
    out = np.zeros((20000, 4), np.float32)[:, :2]  # not contiguous: falls back, still fills
    take_rows(source, idx, out)
    np.testing.assert_array_equal(out, source[idx])


@pytest.mark.parametrize("backend", ["dram", "shards"])
def test_dram_reads_every_requested_row_files_read_unique_rows(
    backend: str, tmp_path: Path
) -> None:
    model = build_model(tiny(), seed=0).eval()
    uri = "dram://" if backend == "dram" else f"shards://{tmp_path / 's'}"
    runtime = attach_tables(model, uri)
    stats = runtime.stats
    ids = torch.tensor([[5, 6, 5, 6, 5, 6, 5, 6, 5, 6]])  # repeated N-grams
    with torch.no_grad():
        runtime(ids)
    if backend == "dram":
        assert stats.unique_rows == stats.rows_requested
    else:
        assert stats.unique_rows < stats.rows_requested
    assert stats.bytes_moved == stats.unique_rows * 4 * model.engram_tables()[1].dim
    runtime.detach()


def test_prefetch_starts_once_the_step_has_taken_its_own_rows(tmp_path: Path) -> None:
    model = build_model(tiny(), seed=0).eval()
    runtime = attach_tables(model, f"lmdb://{tmp_path / 'l'}")
    a, b = torch.randint(0, 300, (2, 8)), torch.randint(0, 300, (2, 8))
    runtime.prefetch(b)
    layer = min(model.engram_tables())
    table = model.engram_tables()[layer]
    assert table._next[-1].future is None  # deferred: no host work before the step runs
    seen: dict[str, bool] = {}
    blocks = {block.layer_id: block for block in model.blocks}

    def note(when: str):
        def hook(*_: object) -> None:  # returns nothing: the block's inputs stay as they are
            if when not in seen:  # the first step only
                seen[when] = table._next[-1].future is not None

        return hook

    blocks[layer].register_forward_pre_hook(note("before"))
    blocks[layer].register_forward_hook(note("after"))
    with torch.no_grad():
        runtime(a)
        assert seen == {"before": False, "after": True}  # started by this layer's lookup
        runtime(b)
    assert runtime.stats.reused_prefetches == len(model.engram_tables())
    runtime.detach()


def test_a_model_built_without_tables_is_served_from_a_store(tmp_path: Path) -> None:
    cfg = tiny()
    uri = f"shards://{tmp_path / 't'}"
    donor = build_model(cfg, seed=3).eval()
    ids = torch.randint(0, 300, (1, 9))
    with torch.no_grad():
        reference = donor(ids)  # the tables in memory: the oracle
    weights = {
        layer: t.embedding.weight.detach().clone() for layer, t in donor.engram_tables().items()
    }
    rest = {k: v for k, v in donor.state_dict().items() if ".engram.table." not in k}
    attach_tables(donor, uri).detach()
    model = build_model(cfg, seed=3, engram_tables=False).eval()
    assert not any(p.numel() > 10_000 and p.shape[1:] == (16,) for p in model.parameters())
    assert model.load_state_dict(rest, strict=False).missing_keys == []
    with pytest.raises(InputError, match="built without rows"):
        model(ids)
    with pytest.raises(InputError, match="attach with export=False"):
        attach_tables(model, "dram://")
    store = open_store(uri, "r", verify_reads=False, random_access=True)
    runtime = attach_tables(model, store, export=False)
    rows = {layer: t for layer, t in model.engram_tables().items()}
    addresses = model.engram_addresses(ids)
    for layer, table in rows.items():
        table.prepare(addresses[layer])
        got = table.lookup(addresses[layer])
        torch.testing.assert_close(got, weights[layer][addresses[layer]], rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(runtime(ids), reference, rtol=0, atol=0)
    runtime.detach()
    assert "engram.layer1" in store.tables()  # still open: the caller opened it, and closes it
    store.close()


def test_shards_without_read_checks_still_fail_verify(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    with open_store(f"shards://{folder}", "w") as store:
        store.create_table("t", 1000, 4, "float32")
        store.scatter("t", np.arange(1000), np.ones((1000, 4), np.float32))
    shard = next((folder / "data").glob("*.shard*"), None) or max(
        (folder / "data").iterdir(), key=lambda p: p.stat().st_size
    )
    raw = bytearray(shard.read_bytes())
    raw[100] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with open_store(f"shards://{folder}", "r", verify_reads=False, random_access=True) as store:
        assert store.gather("t", np.arange(1000)).shape == (1000, 4)  # no read check
        assert not store.verify().ok
    with open_store(f"shards://{folder}", "r") as store, pytest.raises(Exception, match="checksum"):
        store.gather("t", np.arange(1000))


class GatherThreads:
    """A real store that notes the torch thread count each gather ran with."""

    def __init__(self, store) -> None:
        self.store, self.seen = store, []

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def gather(self, name, ids, out=None):
        self.seen.append(torch.get_num_threads())
        return self.store.gather(name, ids, out=out)


def test_prefetches_use_their_own_thread_share_and_can_be_awaited(tmp_path: Path) -> None:
    model = build_model(tiny(), seed=0).eval()
    store = GatherThreads(open_store(f"shards://{tmp_path / 's'}", "a"))
    runtime = attach_tables(model, store, fetch_threads=2, prefetch_threads=1)
    tables = list(runtime.tables.values())
    a, b, c = (
        torch.randint(0, 300, (2, 8), generator=torch.Generator().manual_seed(s)) for s in range(3)
    )
    with torch.no_grad():
        expected = runtime(b)
        runtime.prefetch(b)
        runtime(a)  # launches the prefetch of b on a one-thread worker
        runtime.wait()
        assert all(t._next[-1].future.done() for t in tables)
        assert store.seen[-len(tables) :] == [1] * len(tables)
        torch.testing.assert_close(runtime(b), expected, rtol=0, atol=0)
        runtime.prefetch(c)  # consumed before any forward launched it: the step waits
        runtime(c)
        assert store.seen[-len(tables) :] == [2] * len(tables)
    assert runtime.stats.reused_prefetches == 2 * len(tables)
    with pytest.raises(InputError, match="prefetch_threads"):
        type(tables[0])(store, "engram.layer1", prefetch_threads=0)
    store.close()


def test_starting_a_batch_does_not_wait_for_another_thread_finishing_it() -> None:
    release = threading.Event()

    def launch():
        def finish() -> dict[int, torch.Tensor]:
            release.wait(30)  # a long hash on the fetch thread
            return {1: torch.zeros(1, 1, 1, dtype=torch.long)}

        return finish

    batch = BatchAddresses(launch, tokens=1)
    fetcher = threading.Thread(target=batch.result)
    fetcher.start()
    starter = threading.Thread(target=batch.start)  # what the model's thread does meanwhile
    starter.start()
    starter.join(10)
    finished_first = not starter.is_alive()
    release.set()
    fetcher.join(10)
    assert finished_first  # start() returned while result() was still hashing
    assert batch.result()[1].shape == (1, 1, 1)


def test_trainable_tables_keep_the_fetch_settings(tmp_path: Path) -> None:
    model = build_model(tiny(), seed=0)
    runtime = attach_tables(
        model,
        f"lmdb://{tmp_path / 'l'}",
        trainable=True,
        fetch_threads=2,
        prefetch_threads=1,
        direct_tokens=5,
    )
    tables = model.engram_tables()
    assert tables.keys() == set(tiny().engram_layer_ids)
    for table in tables.values():
        assert isinstance(table, TrainableStoreTable)
        assert (table.fetch_threads, table.prefetch_threads, table.direct_tokens) == (2, 1, 5)
    with pytest.raises(InputError, match="fetch_threads must be at least 1"):
        attach_tables(build_model(tiny(), seed=0), "dram://", fetch_threads=0)
    runtime.detach()


@pytest.mark.parametrize("option", [{"verify_reads": False}, {"random_access": True}])
@pytest.mark.parametrize("scheme", ["dram", "lmdb"])
def test_shards_only_options_are_refused_elsewhere(
    scheme: str, option: dict, tmp_path: Path
) -> None:
    uri = "dram://" if scheme == "dram" else f"lmdb://{tmp_path / 'l'}"
    with pytest.raises(InputError, match=f"{next(iter(option))}.*shards://"):
        open_store(uri, "a", **option)


def test_a_store_without_the_tables_is_named_in_the_error(tmp_path: Path) -> None:
    uri = f"shards://{tmp_path / 'empty'}"
    with open_store(uri, "w") as store:
        store.create_table("other", 10, 4, "float32")
    model = build_model(tiny(), seed=0)
    with pytest.raises(InputError, match=r"no table .engram\.layer1."):
        attach_tables(model, uri, export=False)
    assert all(not isinstance(t, StoreTable) for t in model.engram_tables().values())
    with open_store(uri, "a") as store:  # the runtime let go of the store it opened
        assert set(store.tables()) == {"other"}


def test_steps_read_in_place_default_to_what_the_store_declares(tmp_path: Path) -> None:
    from engram_sdk.stores.dram import DramStore

    class WholeStepsInPlace(DramStore):  # a store that asks for every step in place
        @property
        def in_place_tokens(self) -> int:
            return 1 << 40

    for store, explicit, want in (
        (open_store("dram://", "a"), None, 64),
        (WholeStepsInPlace("dram://", "a"), None, 1 << 40),
        (WholeStepsInPlace("dram://", "a"), 5, 5),
    ):
        with attach_tables(build_model(tiny(), seed=0), store, direct_tokens=explicit) as rt:
            assert {t.direct_tokens for t in rt.tables.values()} == {want}
