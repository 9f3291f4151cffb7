"""How ``lmdb://`` values are laid out: keys, and the xxh3-64 trailer of format 2.

Format 2 appends to every value (row blocks, records, table specs, namespace markers and
the format header) 8 bytes: the little-endian xxh3-64 of the value's full key followed by
its payload. Hashing the key too means a value found under the wrong key (a flipped key
byte) fails its check. Format 1 (engram-sdk before 0.2) has no trailer and is still read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import xxhash
from engram_sdk.stores.errors import StoreCorruptError, StoreError, StoreVersionError
from engram_sdk.stores.models import TableSpec
from pydantic import ValidationError

TRAILER = 8
FORMAT_PLAIN = 1  # no checksums
FORMAT_CHECKED = 2  # xxh3-64 trailer on every value
MAGIC = "engram-sdk-store"


def block_key(table: str, block: int) -> bytes:
    """Key of row block ``block`` of ``table``."""
    return table.encode() + b"\x00" + block.to_bytes(8, "big")


def record_key(ns: str, key: bytes) -> bytes:
    """Key of record ``key`` in namespace ``ns``."""
    return ns.encode() + b"\x00" + key


def checksum(key: bytes, payload: bytes | memoryview) -> int:
    """xxh3-64 of ``key`` then ``payload``."""
    h = xxhash.xxh3_64(key)
    h.update(payload)
    return h.intdigest()


def seal(key: bytes, payload: bytes, checked: bool) -> bytes:
    """The stored value of ``payload`` under ``key``."""
    if not checked:
        return payload
    return payload + checksum(key, payload).to_bytes(TRAILER, "little")


def unseal(
    path: Path, what: object, key: bytes, value: memoryview | bytes, checked: bool
) -> memoryview:
    """The payload of a stored value, after checking its trailer; raises naming ``path``.

    ``what`` names the value in the error; it is formatted only when there is one.
    """
    view = memoryview(value)
    if not checked:
        return view
    if len(view) < TRAILER:
        raise corrupt(path, f"{what} is {len(view)} bytes, shorter than its checksum", TRAILER)
    payload = view[: len(view) - TRAILER]
    stored = int.from_bytes(view[len(view) - TRAILER :], "little")
    if checksum(key, payload) != stored:
        raise corrupt(path, f"{what} fails its xxh3-64 checksum", f"{stored:016x}")
    return payload


def corrupt(path: Path, what: str, expected: object = None) -> StoreCorruptError:
    """The error for a corrupt part of ``data.mdb``."""
    return StoreCorruptError(
        f"{path} is corrupt: {what}",
        path=path,
        expected=expected,
    )


class KeyName:
    """``"<kind> <key>"`` for an error message, formatted only when printed."""

    __slots__ = ("key", "kind")

    def __init__(self, kind: str, key: bytes) -> None:
        self.kind, self.key = kind, key

    def __str__(self) -> str:
        return f"{self.kind} {describe_key(self.key)}"


def describe_key(key: bytes) -> str:
    """A printable name of a stored key (for messages)."""
    name, _, rest = key.partition(b"\x00")
    return f"{name.decode(errors='replace')!r}/{rest.hex()[:32]}"


def read_header(path: Path, raw: bytes | None, foreign: Callable[[], StoreCorruptError]) -> int:
    """The format version in the ``format`` meta entry (checksummed in format 2)."""
    if raw is None:
        raise foreign()
    header = None
    try:
        header = json.loads(bytes(unseal(path, "the format header", b"format", raw, True)))
        version = FORMAT_CHECKED
    except (StoreError, ValueError):
        try:
            header = json.loads(raw)
            version = FORMAT_PLAIN
        except ValueError:
            pass
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise foreign()
    stored = header.get("format_version")
    if isinstance(stored, int) and stored > FORMAT_CHECKED:
        raise StoreVersionError(
            f"{path} has store format {stored}, newer than this engram-sdk reads "
            f"({FORMAT_CHECKED}); upgrade engram-sdk",
            path=path,
            expected=FORMAT_CHECKED,
        )
    if stored != version:
        raise corrupt(path, f"the format header says {stored!r}", version)
    return version


def parse_meta(
    path: Path, entries: Iterable[tuple[bytes, bytes | memoryview]], checked: bool
) -> tuple[dict[str, TableSpec], set[str]]:
    """Table specs and namespace names from the ``meta`` entries, each checked."""
    tables: dict[str, TableSpec] = {}
    names: set[str] = set()
    for key, value in entries:
        if key == b"format":
            continue
        payload = unseal(path, f"meta entry {describe_key(key)}", key, value, checked)
        if key.startswith(b"table:"):
            try:
                spec = TableSpec.model_validate_json(bytes(payload))
            except ValidationError as exc:
                raise corrupt(path, f"table spec {key[6:]!r} is invalid: {exc}") from None
            tables[spec.name] = spec
        elif key.startswith(b"ns:"):
            names.add(key[3:].decode(errors="replace"))
        else:
            raise corrupt(path, f"unknown meta entry {describe_key(key)}")
    return tables, names
