"""shards manifest.json: every single-bit flip detected (or provably harmless), every problem named."""

import json
from pathlib import Path

import numpy as np
import pytest
import xxhash
from engram_sdk.stores import StoreCorruptError, StoreError, open_store
from engram_sdk.stores.manifest import decode_manifest


def small_store(tmp_path: Path) -> tuple[str, Path]:
    uri = f"shards://{tmp_path / 's'}"
    with open_store(uri, "w") as s:
        s.create_table("t", 64, 4)
        s.scatter("t", np.arange(64), np.ones((64, 4), np.float32))
        s.put("ns", b"k", b"v")
    return uri, tmp_path / "s" / "manifest.json"


def write_body(path: Path, body: dict) -> None:
    """A manifest edited by hand but with a valid checksum (what a buggy writer could leave)."""
    raw = json.dumps(body).encode()
    path.write_bytes(b'{"xxh3":"%s","body":%s}\n' % (xxhash.xxh3_64_hexdigest(raw).encode(), raw))


def test_every_single_bit_flip_of_a_manifest_is_detected(tmp_path: Path) -> None:
    _, path = small_store(tmp_path)
    raw = path.read_bytes()
    original = decode_manifest(path, raw)
    harmless = 0
    for i in range(len(raw)):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[i] ^= 1 << bit
            try:
                body = decode_manifest(path, bytes(flipped))
            except StoreError as exc:  # detected: a store error naming the file
                assert exc.path == str(path) and "manifest.json" in str(exc)
                continue
            # not detected: only acceptable if the store it describes is the same one
            assert body == original, f"flip of bit {bit} at byte {i} changed the store silently"
            harmless += 1
    assert len(raw) * 8 > 4000
    assert harmless == 0  # every byte is covered by the head's shape or the body checksum


def test_flips_through_open_name_the_manifest(tmp_path: Path) -> None:
    uri, path = small_store(tmp_path)
    raw = path.read_bytes()
    rng = np.random.default_rng(0)
    for i in rng.integers(0, len(raw), 20).tolist():
        flipped = bytearray(raw)
        flipped[i] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(flipped))
        for mode in ("r", "a"):
            with pytest.raises(StoreError, match=r"manifest\.json"):
                open_store(uri, mode)
    path.write_bytes(raw)
    with open_store(uri, "r") as s:  # nothing was lost or collected meanwhile
        assert s.get("ns", b"k") == b"v" and s.verify().ok


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda b: b["tables"]["t"]["spec"].update(dim=2), r"shard 0: 1024 bytes.*expected 512"),
        (lambda b: b["tables"]["t"]["shards"][0].update(file="../../etc/passwd"), r"file"),
        (lambda b: b["tables"]["t"].pop("rows_per_shard"), r"rows_per_shard"),
        (lambda b: b.update(namespaces=["../x"]), r"namespace"),
        (lambda b: b["tables"].update(u=b["tables"]["t"]), r"spec of 't'"),
        (lambda b: b.update(extra=1), r"extra"),
        (lambda b: b.update(magic="something-else"), r"magic"),
    ],
)
def test_hand_edited_manifests_are_refused_with_what_is_wrong(
    tmp_path: Path, edit, what: str
) -> None:
    uri, path = small_store(tmp_path)
    body = json.loads(path.read_text())["body"]
    edit(body)
    write_body(path, body)
    with pytest.raises(StoreCorruptError, match=r"manifest\.json.*schema.*" + what) as info:
        open_store(uri, "r")
    assert info.value.path == str(path)


def test_missing_manifest_is_an_error_and_nothing_is_collected(tmp_path: Path) -> None:
    for scheme in ("shards", "dram"):
        uri, path = small_store(tmp_path / scheme)
        uri = uri.replace("shards://", f"{scheme}://")
        files = sorted((path.parent / "data").iterdir())
        path.unlink()
        for mode in ("r", "a"):
            with pytest.raises(StoreError, match=r"manifest\.json") as info:
                open_store(uri, mode)
            assert info.value.path == str(path)
        assert sorted((path.parent / "data").iterdir()) == files  # never garbage-collected


def test_format_1_manifests_are_still_read(tmp_path: Path) -> None:
    uri, path = small_store(tmp_path)
    body = json.loads(path.read_text())["body"]
    body["format_version"] = 1
    path.write_text(json.dumps(body))
    with open_store(uri, "r") as s:
        assert s.get("ns", b"k") == b"v"
    with open_store(uri, "a") as s:  # the next commit writes a checksummed manifest
        s.put("ns", b"k2", b"v2")
    assert path.read_bytes().startswith(b'{"xxh3":"')
