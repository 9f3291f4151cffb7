"""One behaviour suite, run against every backend, with numpy arrays and dicts as oracles."""

from pathlib import Path

import numpy as np
import pytest
import torch
from engram_sdk.stores import StoreReadOnlyError, open_store

from engram_sdk.errors import InputError

from .conftest import uri_for

DTYPES = ["float32", "float16", "bfloat16", "int8"]


def random_rows(rng: np.random.Generator, n: int, dim: int, dtype: str) -> np.ndarray:
    if dtype == "int8":
        return rng.integers(-128, 128, size=(n, dim), dtype=np.int8)
    if dtype == "bfloat16":
        return rng.integers(0, 2**16, size=(n, dim), dtype=np.uint16)
    return rng.standard_normal((n, dim)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_round_trip_against_numpy(store, dtype: str) -> None:
    rng = np.random.default_rng(0)
    rows, dim = 5000, 24
    oracle = np.zeros((rows, dim), dtype=store.create_table("t", rows, dim, dtype).storage_dtype)
    for _ in range(4):
        ids = rng.integers(0, rows, size=700)
        vals = random_rows(rng, 700, dim, dtype)
        store.scatter("t", ids, vals)
        for i, v in zip(ids, vals, strict=True):  # last write wins
            oracle[i] = v
    query = rng.integers(0, rows, size=3000)  # duplicates included
    np.testing.assert_array_equal(store.gather("t", query), oracle[query])


def test_gather_into_torch_buffers(store) -> None:
    store.create_table("e", 300, 16, "bfloat16")
    ref = torch.randn(300, 16).to(torch.bfloat16)
    store.scatter("e", np.arange(300), ref)
    ids = np.array([5, 7, 5, 299])
    out = torch.empty(4, 16, dtype=torch.bfloat16)
    ptr = out.data_ptr()
    assert store.gather("e", ids, out=out) is out and out.data_ptr() == ptr
    assert torch.equal(out, ref[ids])
    out_np = np.empty((4, 16), dtype=np.uint16)
    store.gather("e", ids, out=out_np)
    assert np.array_equal(out_np, ref.view(torch.int16).numpy().view(np.uint16)[ids])


def test_fill_from_generator(store) -> None:
    store.create_table("f", 1000, 4)
    store.fill(
        "f", lambda a, b: np.arange(a * 4, b * 4, dtype=np.float32).reshape(-1, 4), chunk_rows=128
    )
    np.testing.assert_array_equal(
        store.gather("f", np.array([0, 999])), [[0, 1, 2, 3], [3996, 3997, 3998, 3999]]
    )


def test_records_against_a_dict(store) -> None:
    rng = np.random.default_rng(1)
    oracle: dict[bytes, bytes] = {}
    for step in range(30):
        keys = [
            bytes(rng.integers(0, 4, size=rng.integers(1, 4)).astype(np.uint8) + 97)
            for _ in range(6)
        ]
        if step % 3 == 2:
            n = store.delete_many("ns", keys)
            assert n == sum(k in oracle for k in set(keys))
            for k in keys:
                oracle.pop(k, None)
        else:
            items = [(k, bytes(rng.integers(0, 256, size=5).astype(np.uint8))) for k in keys]
            store.put_many("ns", items)
            oracle.update(items)
    assert list(store.scan("ns")) == sorted(oracle.items())
    assert list(store.scan("ns", b"a")) == sorted(
        (k, v) for k, v in oracle.items() if k.startswith(b"a")
    )
    assert store.count("ns") == len(oracle)
    assert store.count("ns", b"ab") == sum(k.startswith(b"ab") for k in oracle)
    assert store.get_many("ns", [b"zz", *oracle]) == [None, *oracle.values()]
    assert store.count("empty") == 0 and list(store.scan("empty")) == []


def test_transaction_is_all_or_nothing(store) -> None:
    store.create_table("t", 10, 2)
    store.put("ns", b"keep", b"1")
    with pytest.raises(RuntimeError), store.transaction():
        store.scatter("t", [1], np.ones((1, 2), np.float32))
        store.put("ns", b"new", b"2")
        store.delete("ns", b"keep")
        assert (
            store.get("ns", b"new") == b"2" and store.get("ns", b"keep") is None
        )  # reads see own writes
        assert store.gather("t", [1])[0, 0] == 1
        raise RuntimeError("abort")
    assert store.get("ns", b"new") is None and store.get("ns", b"keep") == b"1"
    assert store.gather("t", [1])[0, 0] == 0
    with store.transaction():
        store.create_table("u", 5, 3)
        store.scatter("u", [4], np.full((1, 3), 7, np.float32))
        store.put_many("ns", [(b"x", b"1"), (b"y", b"2")])
        assert [k for k, _ in store.scan("ns")] == [b"keep", b"x", b"y"]
    assert store.gather("u", [4]).tolist() == [[7, 7, 7]]


def test_bad_inputs_fail_before_writing(store) -> None:
    store.create_table("t", 10, 4, "float16")
    store.scatter("t", [0], np.ones((1, 4), np.float16))
    with pytest.raises(InputError, match=r"out of range.*\[0, 10\)"):
        store.scatter("t", [0, 10], np.zeros((2, 4), np.float16))
    with pytest.raises(InputError, match="float16"):
        store.scatter("t", [0], np.zeros((1, 4), np.float32))
    with pytest.raises(InputError, match=r"shape \(1, 4\)"):
        store.scatter("t", [0], np.zeros((1, 5), np.float16))
    with pytest.raises(InputError, match="out of range"):
        store.gather("t", [-1])
    with pytest.raises(InputError, match="no table"):
        store.gather("nope", [0])
    with pytest.raises(InputError, match="name"):
        store.create_table("../evil", 1, 1)
    with pytest.raises(InputError, match="name"):
        store.put("a/b", b"k", b"v")
    with pytest.raises(InputError, match="bytes"):
        store.put("ns", "str-key", b"v")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="dtype"):
        store.create_table("x", 1, 1, "float64")
    assert store.gather("t", [0]).tolist() == [[1, 1, 1, 1]]


def test_reopen_keeps_everything(backend: str, tmp_path: Path) -> None:
    uri = f"dram://{tmp_path / 'saved'}" if backend == "dram" else uri_for(backend, tmp_path)
    rng = np.random.default_rng(2)
    vals = rng.standard_normal((50, 8)).astype(np.float32)
    with open_store(uri, "a") as s:
        s.create_table("t", 50, 8)
        s.scatter("t", np.arange(50), vals)
        s.put_many("ns", [(b"a", b"1"), (b"b", b"2")])
    with open_store(uri, "r") as s:
        np.testing.assert_array_equal(s.gather("t", np.arange(50)), vals)
        assert dict(s.scan("ns")) == {b"a": b"1", b"b": b"2"}
        assert s.verify().ok
        with pytest.raises(StoreReadOnlyError):
            s.put("ns", b"c", b"3")
    with open_store(uri, "w") as s:  # "w" truncates
        assert s.tables() == {} and s.namespaces() == []


def test_info_describes_tables_and_namespaces(store) -> None:
    store.create_table("t", 7, 3, "int8")
    store.put_many("a", [(b"1", b""), (b"2", b"")])
    info = store.info()
    assert [(t.name, t.rows, t.dim, t.dtype) for t in info.tables] == [("t", 7, 3, "int8")]
    assert info.namespaces == {"a": 2}


def test_gather_out_buffers_edge_cases(store) -> None:
    store.create_table("o", 50, 4)
    ref = np.arange(200, dtype=np.float32).reshape(50, 4)
    store.scatter("o", np.arange(50), ref)
    ids = np.array([49, 0, 7])
    grad = torch.zeros(3, 4, requires_grad=True)
    assert store.gather("o", ids, out=grad) is grad
    assert np.array_equal(grad.detach().numpy(), ref[ids])
    frozen = np.zeros((3, 4), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(InputError, match="read-only"):
        store.gather("o", ids, out=frozen)
    strided = np.zeros((6, 4), np.float32)[::2]  # not contiguous: still filled in place
    store.gather("o", ids, out=strided)
    assert np.array_equal(strided, ref[ids])
