"""Corrupt, truncated, missing, foreign and newer files; locks; readers during commits."""

import json
import multiprocessing as mp
import os
from pathlib import Path

import lmdb
import numpy as np
import pytest
import xxhash
from engram_sdk.stores import (
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
    open_store,
)


def make_shards(tmp_path: Path) -> tuple[str, Path, np.ndarray]:
    uri = f"shards://{tmp_path / 's'}"
    vals = np.random.default_rng(0).standard_normal((4096, 128)).astype(np.float32)  # 2 MiB
    with open_store(uri, "w") as s:
        s.create_table("t", 4096, 128)
        s.scatter("t", np.arange(4096), vals)
        s.put("ns", b"k", b"v")
    (shard,) = (tmp_path / "s" / "data").glob("t.*.bin")
    return uri, shard, vals


def test_flipped_byte_is_found_with_its_offset(tmp_path: Path) -> None:
    uri, shard, _ = make_shards(tmp_path)
    with open(shard, "r+b") as fh:
        fh.seek(1_500_000)
        b = fh.read(1)
        fh.seek(1_500_000)
        fh.write(bytes([b[0] ^ 0x40]))
    with open_store(uri, "r") as s:
        report = s.verify()
        assert not report.ok
        (problem,) = report.problems
        assert (
            problem.file == str(shard) and problem.offset == 1 << 20
        )  # the 1 MiB block holding it
        with pytest.raises(StoreCorruptError, match=r"t\.0\..*checksum.*offset 1048576"):
            s.gather("t", [0])  # never a silently wrong row


def test_truncated_and_missing_shards_are_named(tmp_path: Path) -> None:
    uri, shard, _ = make_shards(tmp_path)
    with open(shard, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(StoreCorruptError, match=rf"{shard.name}.*truncated.*offset 1000"):
        open_store(uri, "r")
    shard.unlink()
    with pytest.raises(StoreCorruptError, match=rf"{shard.name}.*missing"):
        open_store(uri, "r")


def test_newer_manifest_version_is_refused(tmp_path: Path) -> None:
    uri, _, _ = make_shards(tmp_path)
    path = tmp_path / "s" / "manifest.json"
    body = json.loads(path.read_text())["body"]
    body["format_version"] = 99  # a newer writer: a valid checksum over a newer body
    raw = json.dumps(body).encode()
    path.write_bytes(b'{"xxh3":"%s","body":%s}\n' % (xxhash.xxh3_64_hexdigest(raw).encode(), raw))
    with pytest.raises(StoreVersionError, match=r"format version 99.*upgrade"):
        open_store(uri, "r")
    path.write_text("{not json")
    with pytest.raises(StoreCorruptError, match=r"manifest\.json"):
        open_store(uri, "r")


def test_lmdb_of_another_program(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "other"), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"hello", b"world")
    env.close()
    for mode in ("r", "a"):
        with pytest.raises(StoreCorruptError, match="another program"):
            open_store(f"lmdb://{tmp_path / 'other'}", mode)


@pytest.mark.parametrize("scheme", ["lmdb", "shards"])
def test_path_that_is_a_regular_file(tmp_path: Path, scheme: str) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        open_store(f"{scheme}://{f}", "a")
    with pytest.raises(StoreError, match=r"no .*store here"):
        open_store(f"{scheme}://{tmp_path / 'absent'}", "r")
    assert not (tmp_path / "absent").exists()  # reading never creates anything


def _hold_writer(uri: str, ready: "mp.Event", done: "mp.Event") -> None:
    with open_store(uri, "a"):
        ready.set()
        done.wait(30)


@pytest.mark.parametrize("scheme", ["lmdb", "shards"])
def test_second_writer_gets_a_clear_error(tmp_path: Path, scheme: str) -> None:
    uri = f"{scheme}://{tmp_path / 's'}"
    ctx = mp.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_writer, args=(uri, ready, done))
    child.start()
    assert ready.wait(30)
    try:
        with pytest.raises(StoreLockedError, match=rf"locked by pid {child.pid}"):
            open_store(uri, "a")
        with open_store(uri, "r") as reader:  # readers are welcome
            assert reader.tables() == {}
    finally:
        done.set()
        child.join()
    with open_store(uri, "a"):  # the lock went with its holder
        pass


def _commit_loop(uri: str, n: int) -> None:
    with open_store(uri, "a") as s:
        for i in range(1, n):
            with s.transaction():
                s.scatter("t", np.arange(256), np.full((256, 8), i, np.float32))
                s.put("ns", b"gen", b"%d" % i)


@pytest.mark.parametrize("scheme", ["lmdb", "shards"])
def test_readers_see_consistent_snapshots_while_a_writer_commits(
    tmp_path: Path, scheme: str
) -> None:
    uri = f"{scheme}://{tmp_path / 's'}"
    with open_store(uri, "w") as s:
        s.create_table("t", 256, 8)
        s.put("ns", b"gen", b"0")
    ctx = mp.get_context("fork")
    child = ctx.Process(target=_commit_loop, args=(uri, 150))
    child.start()
    seen = set()
    while child.is_alive() or not seen:
        with open_store(uri, "r") as r:
            rows = r.gather("t", np.arange(256))
            assert (rows == rows[0, 0]).all(), "a reader saw a half-applied commit"
            seen.add(float(rows[0, 0]))
    child.join()
    assert child.exitcode == 0 and len(seen) > 1


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", ".hidden", "x\x00y", "", "a" * 200])
def test_hostile_names_never_escape_the_folder(tmp_path: Path, name: str) -> None:
    from engram_sdk.errors import InputError

    folder = tmp_path / "inside"
    with open_store(f"shards://{folder}", "a") as s:
        with pytest.raises(InputError):
            s.create_table(name, 1, 1)
        with pytest.raises(InputError):
            s.put(name, b"k", b"v")
        s.put("ok", b"../../k", b"v")  # keys are data, never paths
    written = {p for p in tmp_path.rglob("*")}
    assert all(folder in p.parents or p == folder for p in written)


def test_symlinked_data_file_is_not_followed_for_writing(tmp_path: Path) -> None:
    uri, _, _ = make_shards(tmp_path)
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    data = tmp_path / "s" / "data"
    gen = json.loads((tmp_path / "s" / "manifest.json").read_text())["body"]["generation"]
    os.symlink(target, data / f"t.0.g{gen + 1}.bin")
    with open_store(uri, "a") as s:  # the writer collects the stray link on open
        s.scatter("t", [0], np.zeros((1, 128), np.float32))
    assert target.read_bytes() == b"precious"
