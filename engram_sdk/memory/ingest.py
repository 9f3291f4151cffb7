"""Incremental ingestion of files and folders into a :class:`Memory`.

A file whose size and mtime match its record costs one ``stat`` and nothing else; a file
whose stat changed is read and hashed (xxh3), and replaced only if its bytes changed; files
gone from the folder are removed. Work is committed in batches, so an ingest killed midway
leaves every earlier batch usable and a rerun finishes the rest.

A record is trusted on its stat only if the file was last modified well before it was read
(``checked_ns``): a write in the same clock tick as the read could otherwise go unnoticed,
the "racy git" problem, so such files are hashed again next time.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from engram_sdk.errors import InputError
from engram_sdk.memory.chunking import CODE_SUFFIXES, chunk_text
from engram_sdk.memory.models import IngestReport
from engram_sdk.memory.safe_read import (
    Identity,
    SkipFile,
    decode_text,
    looks_binary,
    read_limited,
)
from engram_sdk.memory.walker import WalkedFile, WalkReport, printable_path, walk

if TYPE_CHECKING:
    from engram_sdk.memory.memory import Memory

RACY_NS = 2_000_000_000  # a file modified this close to its read is hashed again next time


def check_ingest_args(path: Any, max_file_bytes: Any, batch_bytes: Any) -> Path:
    """The path as a resolved :class:`Path`; clear errors for wrong types and values."""
    if not isinstance(path, str | os.PathLike):
        raise InputError(f"path must be a str or os.PathLike naming a file or folder, got {path!r}")
    for name, value in (("max_file_bytes", max_file_bytes), ("batch_bytes", batch_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive int (bytes), got {value!r}")
    root = Path(path).expanduser()
    shown = printable_path(root)
    if not os.path.lexists(root):
        raise InputError(f"{shown}: no such file or folder")
    root = root.resolve()
    try:
        str(root).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{shown}: the path is not valid UTF-8; rename it to ingest it") from None
    if not (root.is_file() or root.is_dir()):
        raise InputError(f"{shown}: not a regular file or folder")
    return root


def _stat_unchanged(old: dict[str, Any] | None, f: WalkedFile) -> bool:
    if old is None or old.get("size") != f.size or old.get("mtime_ns") != f.mtime_ns:
        return False
    return int(old.get("checked_ns", 0)) - f.mtime_ns > RACY_NS


def ingest_path(
    mem: Memory, root: Path, scope: str, progress: bool, max_file_bytes: int, batch_bytes: int
) -> IngestReport:
    """Ingest ``root`` (a file or a folder) into ``scope``."""
    from engram_sdk.memory.memory import SOURCES, source_key

    started = time.perf_counter()
    report = IngestReport(root=str(root))
    walk_report = WalkReport()
    if root.is_file():
        st = root.stat()
        ident = Identity(st.st_dev, st.st_ino)
        files = [WalkedFile(root, root.name, st.st_size, st.st_mtime_ns, ident)]
        if st.st_size > max_file_bytes:
            walk_report.too_large.append(root.name)
            files = []
    else:
        files = list(walk(root, max_file_bytes, walk_report))
    with mem._lock:
        sid = mem.scope_id(scope, create=True)
        assert sid is not None
        prefix = source_key(sid, str(root) + ("/" if root.is_dir() else ""))
        known = (
            {k: json.loads(v) for k, v in mem.store.scan(SOURCES, prefix)} if root.is_dir() else {}
        )
        seen: set[bytes] = set()
        batch: list[tuple[WalkedFile, bytes, str, bytes]] = []
        refreshed: list[tuple[bytes, dict[str, Any]]] = []
        pending = 0
        with _progress(progress, sum(f.size for f in files)) as advance:
            for f in files:
                report.files_seen += 1
                key = source_key(sid, str(f.path))
                old = known.get(key) if root.is_dir() else _get_json(mem, key)
                if _stat_unchanged(old, f):
                    seen.add(key)
                    report.files_unchanged += 1
                    advance(f.size)
                    continue
                data, skipped = _read(f, max_file_bytes, walk_report, report)
                if skipped in ("unreadable", "changed"):
                    seen.add(key)  # keep what was indexed: a transient failure is no removal
                if data is None:
                    continue
                seen.add(key)
                report.files_hashed += 1
                digest = xxhash.xxh3_64_hexdigest(data)
                if old is not None and old.get("xxh3") == digest:
                    report.files_unchanged += 1
                    if _worth_refreshing(old, f):
                        refreshed.append((key, {**old, **_stat_fields(f)}))
                    advance(f.size)
                    continue
                batch.append((f, key, digest, data))
                pending += len(data)
                if pending >= batch_bytes:
                    _commit_batch(mem, sid, scope, batch, report)
                    advance(pending)
                    batch, pending = [], 0
            if batch:
                _commit_batch(mem, sid, scope, batch, report)
                advance(pending)
        gone = [k for k in known if k not in seen]
        with mem.store.transaction():
            for k, record in refreshed:
                mem.store.put(SOURCES, k, json.dumps(record).encode())
            for k in gone:
                mem._delete_source(sid, known[k]["source"])
        report.files_removed = len(gone)
        if (report.files_indexed or gone) and len(mem.manifest.segments.get(scope, [])) > 16:
            mem.compact(scope)
    report.seconds = time.perf_counter() - started
    _copy_walk_report(walk_report, report)
    return report


def _read(
    f: WalkedFile, max_file_bytes: int, walk_report: WalkReport, report: IngestReport
) -> tuple[bytes | None, str | None]:
    """The file's bytes, or None and why it is not indexed (the reason also recorded)."""
    try:
        data = read_limited(f.path, max_file_bytes, f.identity)
    except SkipFile as skip:
        where = {
            "too_large": walk_report.too_large,
            "special": walk_report.special,
            "changed": report.skipped_changed,
            "unreadable": walk_report.unreadable,
        }[skip.reason]
        where.append(f.rel if skip.reason in ("too_large", "unreadable") else str(f.path))
        if skip.reason == "changed":
            report.warnings.append(f"{f.path}: {skip.detail}; skipped")
        return None, skip.reason
    if looks_binary(data):
        walk_report.binary.append(f.rel)
        return None, "binary"
    return data, None


def _worth_refreshing(old: dict[str, Any], f: WalkedFile) -> bool:
    """Rewrite an unchanged file's record if that lets the next ingest trust its stat."""
    stat_moved = (old.get("size"), old.get("mtime_ns")) != (f.size, f.mtime_ns)
    return stat_moved or time.time_ns() - f.mtime_ns > RACY_NS


def _stat_fields(f: WalkedFile) -> dict[str, int]:
    return {"size": f.size, "mtime_ns": f.mtime_ns, "checked_ns": time.time_ns()}


def _copy_walk_report(walk_report: WalkReport, report: IngestReport) -> None:
    report.skipped_binary = walk_report.binary
    report.skipped_too_large = walk_report.too_large
    report.skipped_special = walk_report.special
    report.skipped_outside_links = walk_report.outside_links
    report.skipped_unreadable = walk_report.unreadable
    report.skipped_undecodable_names = walk_report.undecodable_names
    report.warnings = walk_report.warnings + report.warnings
    report.ignored = walk_report.ignored


def _get_json(mem: Memory, key: bytes) -> dict[str, Any] | None:
    from engram_sdk.memory.memory import SOURCES

    raw = mem.store.get(SOURCES, key)
    return None if raw is None else json.loads(raw)


def _commit_batch(
    mem: Memory,
    sid: int,
    scope: str,
    batch: list[tuple[WalkedFile, bytes, str, bytes]],
    report: IngestReport,
) -> None:
    """One transaction: drop the old versions, write passages, postings and source records."""
    from engram_sdk.memory.memory import SOURCES

    with mem.store.transaction():
        all_chunks, owners = [], []
        for f, key, digest, data in batch:
            old = _get_json(mem, key)
            if old is not None:
                mem._delete_source(sid, old["source"])
            decoded = decode_text(data)
            if decoded.encoding != "utf-8":
                report.decoded_as[str(f.path)] = decoded.encoding
            if decoded.replaced_bytes:
                report.replaced_bytes[str(f.path)] = decoded.replaced_bytes
            chunks = chunk_text(decoded.text, f.path.suffix.lower() in CODE_SUFFIXES)
            all_chunks.append(chunks)
            owners.append((f, key, digest, decoded.encoding))
            report.bytes_indexed += f.size
        flat = [c for chunks in all_chunks for c in chunks]
        sources = [
            str(owner[0].path)
            for owner, chunks in zip(owners, all_chunks, strict=True)
            for _ in chunks
        ]
        pids = mem._write_passages(sid, scope, flat, sources)
        start = 0
        for (f, key, digest, encoding), chunks in zip(owners, all_chunks, strict=True):
            mine = pids[start : start + len(chunks)]
            start += len(chunks)
            record = {
                "source": str(f.path),
                **_stat_fields(f),
                "xxh3": digest,
                "encoding": encoding,
                "pids": mine,
            }
            mem.store.put(SOURCES, key, json.dumps(record).encode())
        report.files_indexed += len(batch)
        report.passages += len(flat)
        mem._save_manifest()


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return nullcontext(lambda _n: None)
    from engram_sdk.stores.progress import progress_bar

    return progress_bar(True, "ingest", total)
