"""LMDB format 2: checksummed blocks and records, truncation at open, verify that survives LMDB."""

from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import StoreCorruptError, StoreError, open_store
from engram_sdk.stores.lmdb_store import LmdbStore, rows_per_block

ROWS, DIM = 9000, 64  # 256-byte rows: 4096 rows per block, 3 blocks


def make(tmp_path: Path) -> tuple[str, Path, np.ndarray]:
    uri = f"lmdb://{tmp_path / 'l'}"
    vals = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)
    with open_store(uri, "w") as s:
        s.create_table("t", ROWS, DIM)
        s.scatter("t", np.arange(ROWS), vals)
        s.put_many("ns", [(b"key%04d" % i, b"value-%d" % i * 20) for i in range(300)])
    return uri, tmp_path / "l" / "data.mdb", vals


def find(path: Path, needle: bytes) -> int:
    data = path.read_bytes()
    at = data.find(needle)
    assert at >= 0
    return at


def flip(path: Path, offset: int, bit: int = 3) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([b ^ (1 << bit)]))


def test_a_flipped_row_byte_is_named_by_gather_and_verify(tmp_path: Path) -> None:
    uri, path, vals = make(tmp_path)
    flip(path, find(path, vals[5000].tobytes()) + 7)  # row 5000 lives in block 1
    with open_store(uri, "r") as s:
        np.testing.assert_array_equal(s.gather("t", [0, 1, 4095]), vals[[0, 1, 4095]])
        with pytest.raises(StoreCorruptError, match=r"data\.mdb.*'t' block 1.*checksum") as info:
            s.gather("t", [5000])
        assert info.value.path == str(path)
        report = s.verify()
    assert not report.ok and "block 1" in report.problems[0].message


def test_a_flipped_record_byte_is_named_by_get_scan_and_verify(tmp_path: Path) -> None:
    uri, path, _ = make(tmp_path)
    flip(path, find(path, b"value-17value-17") + 3)
    with open_store(uri, "r") as s:
        assert s.get("ns", b"key0016") == b"value-16" * 20
        with pytest.raises(StoreCorruptError, match=r"data\.mdb.*record.*checksum"):
            s.get("ns", b"key0017")
        with pytest.raises(StoreCorruptError, match=r"data\.mdb"):
            list(s.scan("ns"))
        assert not s.verify().ok


def test_a_flipped_key_byte_is_not_a_silent_miss(tmp_path: Path) -> None:
    uri, path, _ = make(tmp_path)
    flip(path, find(path, b"ns\x00key0123") + 8, bit=0)  # key0123 -> key0133? no: a new key
    with open_store(uri, "r") as s, pytest.raises(StoreCorruptError, match=r"data\.mdb"):
        s.get("ns", b"key0123")


@pytest.mark.parametrize("keep", [0, 4096, 8192, 20_000, -4096, -1])
def test_truncation_is_found_at_open_not_by_a_signal(tmp_path: Path, keep: int) -> None:
    uri, path, _ = make(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(keep % size if keep < 0 else keep)
    with pytest.raises(StoreError, match=r"data\.mdb") as info:
        open_store(uri, "r")
    assert info.value.path == str(path)


def test_verify_reports_a_page_that_makes_lmdb_abort(tmp_path: Path) -> None:
    uri, path, _ = make(tmp_path)
    with open_store(uri, "r") as s:
        psize = s.env.stat()["psize"]
    page = find(path, b"ns\x00key0150") // psize  # a leaf page of the records
    with open(path, "r+b") as fh:
        fh.seek(page * psize)
        fh.write(bytes(psize))  # zeroed: LMDB asserts IS_LEAF(mp) and aborts
    with open_store(uri, "r") as s:
        report = s.verify()  # LMDB dies in the child, not here
    assert not report.ok
    assert report.problems[0].file == str(path)


def test_format_1_stores_are_read_and_kept_format_1(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    with LmdbStore(f"lmdb://{folder}", "w", folder, checksums=False) as s:
        s.create_table("t", 10, 2)
        s.put("ns", b"k", b"v")
    with open_store(f"lmdb://{folder}", "a") as s:
        assert not s._checked and s.get("ns", b"k") == b"v"
        s.scatter("t", [3], np.ones((1, 2), np.float32))
    with open_store(f"lmdb://{folder}", "r") as s:
        assert s.gather("t", [3]).tolist() == [[1.0, 1.0]] and s.verify().ok


def test_verify_counts_records_and_their_bytes(tmp_path: Path) -> None:
    uri, _, _ = make(tmp_path)
    with open_store(uri, "r") as s:
        report = s.verify()
        info = s.info()
        assert rows_per_block(s.table("t")) == 4096
    assert report.ok and report.checked_records == 300
    expected_records = sum(len(b"key%04d" % i) + len(b"value-%d" % i * 20) for i in range(300))
    assert info.record_bytes == expected_records and info.records == 300
    assert report.checked_bytes >= ROWS * DIM * 4 + expected_records
    assert info.table_bytes == ROWS * DIM * 4
    with pytest.raises(StoreError, match="closed"):
        s.table("t")


def test_info_reports_the_format_on_disk(tmp_path: Path) -> None:
    uri, _, _ = make(tmp_path)
    with open_store(uri, "r") as s:
        assert s.info().format_version == 2
    with LmdbStore(f"lmdb://{tmp_path / 'old'}", "w", tmp_path / "old", checksums=False) as s:
        assert s.info().format_version == 1
    with open_store(f"shards://{tmp_path / 's'}", "w") as s:
        assert s.info().format_version == 2
