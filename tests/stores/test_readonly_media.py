"""Stores on read-only media (a read-only bind mount): mode "r" reads, writers get a clear error."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import open_store

READER = """
import json, sys
import numpy as np
from engram_sdk.stores import open_store
from engram_sdk.errors import EngramError
uri = sys.argv[1]
with open_store(uri, "r") as s:
    rows = s.gather("t", np.arange(64)).tolist()
    recs = [[k.decode(), v.decode()] for k, v in s.scan("ns")]
    ok = s.verify().ok
try:
    open_store(uri, "a")
    writer = "opened"
except EngramError as exc:
    writer = type(exc).__name__ + ": " + str(exc)
print(json.dumps({"rows": rows, "recs": recs, "ok": ok, "writer": writer}))
"""


def _read_only_run(src: Path, mnt: Path, uri: str) -> dict:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount to make a read-only bind mount")
    mnt.mkdir()
    script = (
        f"mount --bind {src} {mnt} && mount -o remount,bind,ro {mnt} "
        f"&& {sys.executable} -c '{READER}' {uri}"
    )
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if proc.returncode and ("mount" in proc.stderr or "unshare" in proc.stderr):
        pytest.skip(f"cannot make a read-only bind mount here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["lmdb", "shards"])
@pytest.mark.parametrize("drop_lock_file", [False, True])
def test_read_only_media(backend: str, drop_lock_file: bool, tmp_path: Path) -> None:
    src = tmp_path / "src"
    rows = np.arange(64 * 8, dtype=np.float32).reshape(64, 8)
    with open_store(f"{backend}://{src / 'store'}", "w") as s:
        s.create_table("t", 64, 8)
        s.scatter("t", np.arange(64), rows)
        s.put_many("ns", [(b"a", b"1"), (b"b", b"2")])
    if drop_lock_file:  # a copy made without LMDB's lock.mdb / our writer.lock
        for name in ("lock.mdb", "writer.lock"):
            (src / "store" / name).unlink(missing_ok=True)
    before = {p: p.read_bytes() for p in (src / "store").rglob("*") if p.is_file()}
    got = _read_only_run(src, tmp_path / "mnt", f"{backend}://{tmp_path / 'mnt' / 'store'}")
    assert np.array_equal(np.array(got["rows"], np.float32), rows)
    assert got["recs"] == [["a", "1"], ["b", "2"]] and got["ok"]
    assert got["writer"].startswith("StoreReadOnlyError: cannot write the store at")
    after = {p: p.read_bytes() for p in (src / "store").rglob("*") if p.is_file()}
    assert after == before
