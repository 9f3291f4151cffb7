"""Writing until a small filesystem is full: a clear store error, and the last commit survives."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import StoreError, StoreFullError, open_store


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs (needs root and mount; skipped with the reason otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("backend", ["dram", "lmdb", "shards"])
def test_disk_full_is_a_store_error_and_the_last_commit_survives(
    backend: str, small_fs: Path
) -> None:
    uri = f"{backend}://{small_fs / 'store'}"
    rng = np.random.default_rng(0)
    committed: dict[bytes, bytes] = {}
    error = None
    with open_store(uri, "w", durable=False) as s:
        s.create_table("t", 256, 64)
        s.scatter("t", np.arange(256), np.ones((256, 64), np.float32))
        for i in range(64):
            batch = [(b"k%03d-%d" % (i, j), rng.bytes(64 << 10)) for j in range(4)]
            try:
                with s.transaction():
                    s.put_many("ns", batch)
                    s.scatter("t", [i], np.full((1, 64), i, np.float32))
            except StoreError as exc:
                error = exc
                break
            committed.update(batch)
        assert isinstance(error, StoreFullError), error
        assert str(small_fs / "store") in str(error) and error.path is not None
        # nothing of the failed commit is visible, in this process either
        assert dict(s.scan("ns")) == committed
        assert s.gather("t", [i]).tolist() == [[1.0] * 64]
    with open_store(uri, "r") as s:  # and after a reopen
        assert dict(s.scan("ns")) == committed
        rows = s.gather("t", np.arange(256))
        want = np.ones((256, 64), np.float32)
        want[: len(committed) // 4] = np.arange(len(committed) // 4)[:, None]
        np.testing.assert_array_equal(rows, want)
        assert s.verify().ok
