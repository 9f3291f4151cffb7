"""Pydantic models of the memory: its manifest, passages, hits, contexts and reports."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# 3: passage texts in fragments (engram_sdk.memory.text_store), records keep their header;
# 2: folded byte-trigram index, texts in passage records (read, and migrated when opened
# for writing); 1: token-bigram fingerprints
MEMORY_FORMAT_VERSION = 3
READABLE_FORMATS = (2, 3)
LAZY = ConfigDict(defer_build=True)  # validators built on first use, not at every CLI start


class MemoryManifest(BaseModel):
    """What fixes the memory's addresses; stored in the store, checked at open."""

    format_version: int = MEMORY_FORMAT_VERSION
    encoding: str = "cl100k_base"
    ngram: int = 2
    seed: int = 20240113
    next_pid: int = 1
    next_segment: int = 1
    scopes: dict[str, int] = Field(default_factory=dict)
    segments: dict[str, list[int]] = Field(default_factory=dict)


class Passage(BaseModel):
    """A stored passage (``created``: seconds since the epoch, for forgetting by age)."""

    model_config = LAZY

    pid: int
    source: str
    scope: str
    line_start: int
    line_end: int
    byte_start: int
    byte_end: int
    text: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    created: float = Field(default_factory=time.time)


def encode_passage(p: Passage) -> bytes:
    """A JSON header, a NUL, then the zlib-compressed UTF-8 text."""
    text = zlib.compress(p.text.encode("utf-8", "surrogatepass"), 1)
    return p.model_dump_json(exclude={"text"}).encode() + b"\x00" + text


def encode_passage_records(
    *,
    pids: Sequence[int],
    chunks: Sequence[Any],
    sources: Sequence[str],
    scope: str,
    metadata: dict[str, Any],
    created: float,
) -> list[bytes]:
    """:func:`encode_passage` of chunks (line and byte span, text) from values already
    checked at the API boundary: the same records, without a model per passage; the JSON of
    the scope, the metadata and each source is written once."""
    spans = [(c.line_start, c.line_end, c.byte_start, c.byte_end) for c in chunks]
    heads = passage_record_heads(
        pids=pids, spans=spans, sources=sources, scope=scope, metadata=metadata, created=created
    )
    texts = (zlib.compress(c.text.encode("utf-8", "surrogatepass"), 1) for c in chunks)
    return [head + text for head, text in zip(heads, texts, strict=True)]


def passage_record_heads(
    *,
    pids: Sequence[int],
    spans: Sequence[Sequence[int]],
    sources: Sequence[str],
    scope: str,
    metadata: dict[str, Any],
    created: float,
) -> list[bytes]:
    """The part of each passage record before its compressed text: the JSON header and the
    NUL (``spans`` rows: line_start, line_end, byte_start, byte_end)."""
    names: dict[str, str] = {}
    common = f'"scope":{json.dumps(scope)},'
    tail = f'"metadata":{json.dumps(metadata, separators=(",", ":"))},"created":{created!r}}}'
    out = []
    for pid, (l0, l1, b0, b1), src in zip(pids, spans, sources, strict=True):
        name = names.get(src)
        if name is None:
            name = names[src] = json.dumps(src)
        head = (
            f'{{"pid":{pid},"source":{name},{common}"line_start":{l0},'
            f'"line_end":{l1},"byte_start":{b0},"byte_end":{b1},{tail}'
        )
        out.append(head.encode() + b"\x00")
    return out


def decode_passage(raw: bytes) -> Passage:
    """Inverse of :func:`encode_passage`; a format 3 record (its text in a fragment) gives a
    passage whose ``text`` is empty."""
    head, _, text = bytes(raw).partition(b"\x00")
    passage = Passage.model_validate_json(head)
    if text:
        passage.text = zlib.decompress(text).decode("utf-8", "surrogatepass")
    return passage


class Hit(BaseModel):
    """One search result."""

    model_config = LAZY

    source: str
    line_start: int
    line_end: int
    score: float
    snippet: str
    passage_id: int
    phrase_match: bool
    scope: str
    metadata: dict[str, Any] = Field(default_factory=dict)


CONTEXT_FORMAT_VERSION = 1


class Context(BaseModel):
    """Passages assembled under a token budget, with their sources (``engram context
    --json`` prints it; ``format_version`` changes only if a field is removed or changes
    meaning)."""

    model_config = LAZY

    format_version: int = CONTEXT_FORMAT_VERSION
    query: str
    text: str
    tokens: int
    passages: list[Hit]


INGEST_REPORT_FORMAT_VERSION = 1


class IngestReport(BaseModel):
    """What an ingest did (``engram ingest --json`` prints it).

    ``files_hashed`` counts files read and hashed because their size or mtime changed;
    ``decoded_as`` names files that were not UTF-8 and the encoding they were read with;
    ``replaced_bytes`` counts, per file, bytes replaced by U+FFFD; ``warnings`` are sentences
    for the user (invalid ignore patterns with file:line, undecodable names, swapped files).
    """

    model_config = LAZY

    format_version: int = INGEST_REPORT_FORMAT_VERSION
    root: str
    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_hashed: int = 0
    files_removed: int = 0
    passages: int = 0
    bytes_indexed: int = 0
    seconds: float = 0.0
    skipped_binary: list[str] = Field(default_factory=list)
    skipped_too_large: list[str] = Field(default_factory=list)
    skipped_special: list[str] = Field(default_factory=list)
    skipped_outside_links: list[str] = Field(default_factory=list)
    skipped_unreadable: list[str] = Field(default_factory=list)
    skipped_changed: list[str] = Field(default_factory=list)
    skipped_undecodable_names: list[str] = Field(default_factory=list)
    decoded_as: dict[str, str] = Field(default_factory=dict)
    replaced_bytes: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    ignored: int = 0

    @property
    def mb_per_s(self) -> float:
        """Indexing throughput."""
        return self.bytes_indexed / max(self.seconds, 1e-9) / 1e6


SOURCE_INFO_FORMAT_VERSION = 1


class SourceInfo(BaseModel):
    """One line of :meth:`Memory.sources`: a source, its passage count and (for files)
    its size, mtime and the encoding it was read with."""

    model_config = LAZY

    format_version: int = SOURCE_INFO_FORMAT_VERSION
    scope: str
    source: str
    passages: int
    bytes: int | None = None
    mtime_ns: int | None = None
    encoding: str | None = None
