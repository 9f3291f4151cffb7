"""PinnedFiles: a shards:// table mapped back to back serves the store's rows bitwise."""

from pathlib import Path

import numpy as np
import pytest
import torch
from engram_sdk.stores import open_store
from engram_sdk.stores.errors import StoreError, StoreReadOnlyError
from engram_sdk.stores.pinned_files import PinnedFiles


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pinned") / "rows"
    rows = torch.randn(600_000, 64, generator=torch.Generator().manual_seed(0))
    with open_store(f"shards://{path}", "w", durable=False) as store, store.transaction():
        store.create_table("t", len(rows), 64, "bfloat16")  # 2 shard files
        store.scatter("t", np.arange(len(rows)), rows.to(torch.bfloat16))
        store.create_table("sparse", 1_100_000, 64, "bfloat16")  # a middle shard unwritten
        store.scatter("sparse", np.array([3, 1_099_999]), rows[:2].to(torch.bfloat16))
    return path


def test_rows_equal_the_shard_stores_rows(folder: Path) -> None:
    ids = np.random.default_rng(1).integers(0, 600_000, 4000)
    sparse_ids = np.array([0, 3, 600_000, 1_099_999])
    with (
        open_store(f"shards://{folder}", "r") as plain,
        PinnedFiles(open_store(f"shards://{folder}", "r")) as mapped,
    ):
        assert np.array_equal(mapped.gather("t", ids), plain.gather("t", ids))
        got = mapped.gather("sparse", sparse_ids)
        assert np.array_equal(got, plain.gather("sparse", sparse_ids))
        assert not got[[0, 2]].any()  # never written: zeros, as the store reads them
        out = torch.empty(len(ids), 64, dtype=torch.bfloat16)
        mapped.gather("t", ids, out=out)
        want = torch.from_numpy(plain.gather("t", ids).view(np.int16)).view(torch.bfloat16)
        assert torch.equal(out, want)
        assert mapped.pinned_rows("t") is None  # not registered (pin=False)
        with pytest.raises(StoreReadOnlyError):
            mapped.scatter("t", np.array([0]), np.zeros((1, 64), np.uint16))


def test_only_shard_stores(tmp_path: Path) -> None:
    with (
        open_store(f"lmdb://{tmp_path / 'l'}", "w") as store,
        pytest.raises(StoreError, match="shards://"),
    ):
        PinnedFiles(store)
