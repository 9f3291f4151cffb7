"""``manifest.json`` of a ``shards://`` store: schema, checksum, reading and writing.

The file is one JSON object with a fixed head, ``{"xxh3":"<16 hex>","body":`` + body +
``}`` + newline, where the xxh3-64 covers the exact bytes of the body. Every byte of the file
is therefore checked: a flip in the head breaks its fixed shape or changes the expected
checksum, a flip in the body changes its checksum. A checksum-valid body is then validated
against the schema (names, sizes, shard counts), so a hand-edited manifest is refused with
what is wrong rather than read as a different store. Format 1 manifests (plain JSON, no
checksum, written by engram-sdk before 0.2) are still read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import xxhash
from engram_sdk.stores.errors import StoreCorruptError, StoreVersionError
from engram_sdk.stores.models import TableSpec
from engram_sdk.stores.validate import check_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAGIC = "engram-sdk-shards"
MANIFEST_FORMAT_VERSION = 2
CHECK_BLOCK = 1 << 20
_FILE = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}$"
_HEX = r"^[0-9a-f]{16}$"
_HEAD = re.compile(rb'^\{"xxh3":"([0-9a-f]{16})","body":')
_TAIL = b"}\n"


class ShardEntry(BaseModel):
    """One shard file: its size and its xxh3-64, whole and per CHECK_BLOCK."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field(pattern=_FILE)
    bytes: int = Field(ge=0)
    xxh3: str = Field(pattern=_HEX)
    blocks: list[str]


class TableEntry(BaseModel):
    """One table: its spec and shards (None: never written, zeros)."""

    model_config = ConfigDict(extra="forbid")
    spec: TableSpec
    rows_per_shard: int = Field(ge=1)
    shards: list[ShardEntry | None]

    @model_validator(mode="after")
    def _shapes_agree(self) -> TableEntry:
        rows, rps = self.spec.rows, self.rows_per_shard
        if len(self.shards) != -(-rows // rps):
            raise ValueError(
                f"table {self.spec.name!r}: {len(self.shards)} shards, expected {-(-rows // rps)}"
            )
        for s, shard in enumerate(self.shards):
            if shard is None:
                continue
            want = min(rps, rows - s * rps) * self.spec.row_bytes
            if shard.bytes != want or len(shard.blocks) != -(-want // CHECK_BLOCK):
                raise ValueError(
                    f"table {self.spec.name!r} shard {s}: {shard.bytes} bytes in "
                    f"{len(shard.blocks)} checksum blocks, expected {want} bytes"
                )
        return self


class SegmentEntry(BaseModel):
    """One record segment file."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field(pattern=_FILE)
    bytes: int = Field(ge=8)
    xxh3: str = Field(pattern=_HEX)


class ShardsManifest(BaseModel):
    """What a shards store holds at one generation."""

    model_config = ConfigDict(extra="forbid")
    magic: Literal["engram-sdk-shards"]
    format_version: int = Field(ge=1, le=MANIFEST_FORMAT_VERSION)
    generation: int = Field(ge=0)
    tables: dict[str, TableEntry]
    segments: list[SegmentEntry]
    namespaces: list[str]

    @model_validator(mode="after")
    def _names_agree(self) -> ShardsManifest:
        for name, table in self.tables.items():
            if table.spec.name != name:
                raise ValueError(f"table key {name!r} holds the spec of {table.spec.name!r}")
            check_name("table", name)
        for ns in self.namespaces:
            check_name("namespace", ns)
        return self


def empty_manifest() -> dict[str, Any]:
    """The manifest of a store with nothing in it."""
    return {
        "magic": MAGIC,
        "format_version": MANIFEST_FORMAT_VERSION,
        "generation": 0,
        "tables": {},
        "segments": [],
        "namespaces": [],
    }


def encode_manifest(body: dict[str, Any]) -> bytes:
    """The bytes of ``manifest.json`` for ``body`` (head with checksum, body, tail)."""
    raw = json.dumps({**body, "format_version": MANIFEST_FORMAT_VERSION}, indent=1).encode()
    head = b'{"xxh3":"' + xxhash.xxh3_64_hexdigest(raw).encode() + b'","body":'
    return head + raw + _TAIL


def decode_manifest(path: Path, raw: bytes) -> dict[str, Any]:
    """The checked body of ``manifest.json``; every problem is a store error naming ``path``."""
    head = _HEAD.match(raw)
    if head is not None:
        body_bytes = raw[head.end() : len(raw) - len(_TAIL)]
        if not raw.endswith(_TAIL):
            raise _corrupt(path, "its last bytes are not the closing '}' and newline", len(raw))
        actual = xxhash.xxh3_64_hexdigest(body_bytes)
        if actual != head.group(1).decode():
            raise _corrupt(
                path,
                f"its body fails its xxh3-64 checksum (stored {head.group(1).decode()}, "
                f"computed {actual})",
                head.end(),
            )
        body = _parse(path, body_bytes)
    else:
        body = _parse(path, raw)  # format 1: plain JSON, no checksum
        if isinstance(body, dict) and body.get("format_version") != 1:
            if _newer(body):
                _refuse_newer(path, body["format_version"])
            raise _corrupt(path, "it has no checksum head and is not a format 1 manifest", 0)
    if not isinstance(body, dict):
        raise _corrupt(path, "its body is not a JSON object", 0)
    if _newer(body):
        _refuse_newer(path, body["format_version"])
    try:
        ShardsManifest.model_validate(body)
    except (ValidationError, ValueError) as exc:
        raise _corrupt(path, f"it does not match the manifest schema: {_first_error(exc)}") from exc
    return body


def _parse(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        offset = exc.pos if isinstance(exc, json.JSONDecodeError) else None
        raise _corrupt(path, f"it is not valid JSON ({exc})", offset) from exc


def _newer(body: Any) -> bool:
    version = body.get("format_version") if isinstance(body, dict) else None
    return (
        body.get("magic") == MAGIC
        and isinstance(version, int)
        and not isinstance(version, bool)
        and version > MANIFEST_FORMAT_VERSION
    )


def _refuse_newer(path: Path, version: int) -> None:
    raise StoreVersionError(
        f"{path} has format version {version}, newer than this engram-sdk reads "
        f"({MANIFEST_FORMAT_VERSION}); upgrade engram-sdk",
        path=path,
        expected=MANIFEST_FORMAT_VERSION,
    )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc)


def _corrupt(path: Path, what: str, offset: int | None = None) -> StoreCorruptError:
    return StoreCorruptError(
        f"{path} is not a valid shards manifest: {what}",
        path=path,
        offset=offset,
        expected="a shards manifest.json with a valid xxh3-64 checksum",
    )
