"""Incremental ingestion of files and folders into a :class:`Memory`.

Unchanged files cost a stat and an xxh3 hash and write nothing; changed files are
replaced; files gone from the folder are removed. Work is committed in batches, so an
ingest killed midway leaves every earlier batch usable and a rerun finishes the rest.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from engram_sdk.errors import InputError
from engram_sdk.memory.chunking import CODE_SUFFIXES, chunk_text
from engram_sdk.memory.models import IngestReport
from engram_sdk.memory.walker import WalkedFile, WalkReport, walk

if TYPE_CHECKING:
    from engram_sdk.memory.memory import Memory


def ingest_path(
    mem: Memory, root: Path, scope: str, progress: bool, max_file_bytes: int, batch_bytes: int
) -> IngestReport:
    """Ingest ``root`` (a file or a folder) into ``scope``."""
    from engram_sdk.memory.memory import SOURCES, source_key

    if not root.exists():
        raise InputError(f"{root}: no such file or folder")
    root = root.resolve()
    started = time.perf_counter()
    report = IngestReport(root=str(root))
    walk_report = WalkReport()
    if root.is_file():
        st = root.stat()
        files = [WalkedFile(root, root.name, st.st_size, st.st_mtime_ns)]
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
        pending = 0
        bar_ctx = _progress(progress, sum(f.size for f in files))
        with bar_ctx as advance:
            for f in files:
                report.files_seen += 1
                key = source_key(sid, str(f.path))
                seen.add(key)
                try:
                    data = f.path.read_bytes()
                except OSError:
                    walk_report.unreadable.append(f.rel)
                    continue
                digest = xxhash.xxh3_64_hexdigest(data)
                old = known.get(key) if known else _get_json(mem, key)
                if old is not None and old.get("xxh3") == digest:
                    report.files_unchanged += 1
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
        if gone:
            with mem.store.transaction():
                for k in gone:
                    mem._delete_source(sid, known[k]["source"])
            report.files_removed = len(gone)
        if (report.files_indexed or gone) and len(mem.manifest.segments.get(scope, [])) > 16:
            mem.compact(scope)
    report.seconds = time.perf_counter() - started
    report.skipped_binary = walk_report.binary
    report.skipped_too_large = walk_report.too_large
    report.skipped_special = walk_report.special
    report.skipped_outside_links = walk_report.outside_links
    report.ignored = walk_report.ignored
    return report


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
            text = data.decode("utf-8", errors="replace")
            chunks = chunk_text(text, f.path.suffix.lower() in CODE_SUFFIXES)
            all_chunks.append(chunks)
            owners.append((f, key, digest))
            report.bytes_indexed += f.size
        flat = [c for chunks in all_chunks for c in chunks]
        sources = [
            str(f.path)
            for (f, _, _), chunks in zip(owners, all_chunks, strict=True)
            for _ in chunks
        ]
        pids = mem._write_passages(sid, scope, flat, sources)
        start = 0
        for (f, key, digest), chunks in zip(owners, all_chunks, strict=True):
            mine = pids[start : start + len(chunks)]
            start += len(chunks)
            record = {
                "source": str(f.path),
                "size": f.size,
                "mtime_ns": f.mtime_ns,
                "xxh3": digest,
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
