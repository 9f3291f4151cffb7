"""Source records: what the memory knows about each file or ``add`` source of a scope.

One JSON record per source in the ``mem.source`` namespace (key: scope id + source name):
its passage ids and, for ingested files, the stat and hash that make re-ingest
incremental (TTLs are per passage: :mod:`engram_sdk.memory.forget`).
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from engram_sdk.memory.memory import SOURCES, source_key
from engram_sdk.memory.models import SourceInfo
from engram_sdk.stores import Store


class SourceRecord(BaseModel):
    """A source of a scope: a file (with its stat and hash) or a name given to ``add``;
    unknown fields are kept, so records written by a newer version survive a rewrite."""

    model_config = ConfigDict(extra="allow")

    source: str
    pids: list[int] = Field(default_factory=list)
    size: int | None = None
    mtime_ns: int | None = None
    checked_ns: int | None = None
    xxh3: str | None = None
    encoding: str | None = None


def get_record(store: Store, scope_id: int, source: str) -> SourceRecord | None:
    """The record of ``source`` in the scope, or None."""
    raw = store.get(SOURCES, source_key(scope_id, source))
    return None if raw is None else SourceRecord.model_validate_json(raw)


def scan_records(store: Store, scope_id: int, prefix: str = "") -> Iterator[SourceRecord]:
    """Records of the scope whose source name starts with ``prefix``, in key order."""
    key_prefix = source_key(scope_id, prefix) if prefix else scope_id.to_bytes(4, "big")
    for _, raw in store.scan(SOURCES, key_prefix):
        yield SourceRecord.model_validate_json(raw)


def put_record(store: Store, scope_id: int, record: SourceRecord) -> None:
    """Write (or replace) a source's record."""
    data = record.model_dump_json(exclude_none=True, exclude_defaults=False).encode()
    store.put(SOURCES, source_key(scope_id, record.source), data)


__all__ = ["SourceInfo", "SourceRecord", "get_record", "put_record", "scan_records"]
