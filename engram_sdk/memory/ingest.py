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

import os
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import Any, Protocol

from engram_sdk.errors import InputError
from engram_sdk.memory import purge
from engram_sdk.memory.alloc import reuse_freed_memory
from engram_sdk.memory.chunking import Chunk
from engram_sdk.memory.models import IngestReport
from engram_sdk.memory.passage_batch import PassageBatch
from engram_sdk.memory.prepare import (
    PARALLEL_MIN_BYTES,
    Bundle,
    Job,
    Prepared,
    prepare_all,
    worker_count,
)
from engram_sdk.memory.purge import KeyRun
from engram_sdk.memory.safe_read import Identity
from engram_sdk.memory.sources import SourceRecord, get_record, put_record, scan_records
from engram_sdk.memory.walker import WalkedFile, WalkReport, printable_path, walk
from engram_sdk.stores import Store

RACY_NS = 2_000_000_000  # a file modified this close to its read is hashed again next time


class IngestTarget(Protocol):
    """What ingest needs from a memory (:class:`~engram_sdk.memory.Memory` is one)."""

    @property
    def store(self) -> Store: ...

    def scope_id(self, scope: str, create: bool = False) -> int | None: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def write_passages(
        self,
        scope: str,
        chunks: Sequence[Chunk] | PassageBatch,
        sources: Sequence[str],
        metadata: dict[str, Any] | None = None,
        *,
        index_later: list[KeyRun] | None = None,
    ) -> list[int]: ...

    def index_runs(self, scope: str, runs: Sequence[KeyRun]) -> None: ...

    def delete(self, source: str | None = None, scope: str | None = None) -> int: ...


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


def _stat_unchanged(old: SourceRecord | None, f: WalkedFile) -> bool:
    if old is None or (old.size, old.mtime_ns) != (f.size, f.mtime_ns):
        return False
    return (old.checked_ns or 0) - f.mtime_ns > RACY_NS


def _worth_refreshing(old: SourceRecord, f: WalkedFile) -> bool:
    """Rewrite an unchanged file's record if that lets the next ingest trust its stat."""
    stat_moved = (old.size, old.mtime_ns) != (f.size, f.mtime_ns)
    return stat_moved or time.time_ns() - f.mtime_ns > RACY_NS


def _files(root: Path, max_file_bytes: int, walk_report: WalkReport) -> list[WalkedFile]:
    if root.is_dir():
        return list(walk(root, max_file_bytes, walk_report))
    st = root.stat()
    if st.st_size > max_file_bytes:
        walk_report.too_large.append(root.name)
        return []
    return [
        WalkedFile(str(root), root.name, st.st_size, st.st_mtime_ns, Identity(st.st_dev, st.st_ino))
    ]


def ingest_path(
    mem: IngestTarget,
    root: Path,
    scope: str,
    progress: bool,
    max_file_bytes: int,
    batch_bytes: int,
    workers: int | None = None,
) -> IngestReport:
    """Ingest ``root`` (a file or a folder) into ``scope``; ``workers`` None: automatic."""
    return _ingest(mem, root, scope, progress, max_file_bytes, batch_bytes, workers)


def _ingest(
    mem: IngestTarget,
    root: Path,
    scope: str,
    progress: bool,
    max_file_bytes: int,
    batch_bytes: int,
    workers: int | None,
) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport(root=str(root))
    walk_report = WalkReport()
    files = _files(root, max_file_bytes, walk_report)
    with mem.transaction():
        sid = mem.scope_id(scope, create=True)
    assert sid is not None
    known = _known_records(mem.store, sid, root)
    seen: set[str] = set()
    refreshed: list[SourceRecord] = []
    jobs: list[Job] = []
    with (
        _progress(progress, sum(f.size for f in files)) as advance,
        ExitStack() as bulk_memory,
        _Batch(mem, sid, scope, known, report) as batch,
    ):
        for f in files:
            report.files_seen += 1
            old = known.get(f.source)
            if _stat_unchanged(old, f):
                seen.add(f.source)
                report.files_unchanged += 1
                advance(f.size)
            else:
                jobs.append(Job(f, old.xxh3 if old else None, max_file_bytes))
        if sum(j.walked.size for j in jobs) >= PARALLEL_MIN_BYTES:  # large arrays ahead
            bulk_memory.enter_context(reuse_freed_memory())
        for bundle in prepare_all(jobs, worker_count(jobs, workers)):
            for done in bundle.files:
                if _settle(done, known, seen, refreshed, walk_report, report):
                    advance(done.size)
            batch.write(bundle)
            if batch.bytes >= batch_bytes:
                advance(batch.commit())
        advance(batch.commit())
    gone = [name for name in known if name not in seen]
    with mem.transaction():
        for record in refreshed:
            put_record(mem.store, sid, record)
        for name in gone:
            mem.delete(source=name, scope=scope)
    report.files_removed = len(gone)
    report.seconds = time.perf_counter() - started
    _copy_walk_report(walk_report, report)
    return report


def _known_records(store: Store, sid: int, root: Path) -> dict[str, SourceRecord]:
    """Records of the files under ``root`` (or of the file ``root``) by source name."""
    if root.is_dir():
        return {r.source: r for r in scan_records(store, sid, str(root) + "/")}
    single = get_record(store, sid, str(root))
    return {single.source: single} if single else {}


def _settle(
    done: Prepared,
    known: dict[str, SourceRecord],
    seen: set[str],
    refreshed: list[SourceRecord],
    walk_report: WalkReport,
    report: IngestReport,
) -> bool:
    """Account for a file that was skipped or found unchanged; True if it was (a file with
    new passages is left to :func:`_commit_batch`)."""
    name = done.job.walked.source
    if done.skipped in ("unreadable", "changed") or done.skipped is None:
        seen.add(name)  # a transient failure keeps what was indexed
    if done.skipped is not None:
        _record_skip(done, walk_report, report)
        return True
    report.files_hashed += 1
    if not done.unchanged:
        return False
    report.files_unchanged += 1
    old = known[name]
    if _worth_refreshing(old, done.job.walked):
        refreshed.append(old.model_copy(update=_stat_fields(done.job.walked)))
    return True


def _record_skip(done: Prepared, walk_report: WalkReport, report: IngestReport) -> None:
    f = done.job.walked
    where = {
        "too_large": walk_report.too_large,
        "special": walk_report.special,
        "changed": report.skipped_changed,
        "unreadable": walk_report.unreadable,
        "binary": walk_report.binary,
    }[done.skipped or ""]
    where.append(f.source if done.skipped in ("special", "changed") else f.rel)
    if done.skipped == "changed":
        report.warnings.append(f"{f.source}: {done.detail}; skipped")


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


class _Batch:
    """Changed files written bundle by bundle into one open transaction (old versions
    dropped, passages, texts and source records written as each bundle arrives, so the
    writer keeps pace with the workers); :meth:`commit` indexes the batch's passages (a
    merge per segment) and commits. An error rolls the open batch back."""

    def __init__(
        self,
        mem: IngestTarget,
        sid: int,
        scope: str,
        known: dict[str, SourceRecord],
        report: IngestReport,
    ) -> None:
        self.mem, self.sid, self.scope, self.known, self.report = mem, sid, scope, known, report
        self.open: ExitStack | None = None
        self.runs: list[KeyRun] = []
        self.bytes = 0

    def __enter__(self) -> _Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.open is not None:  # an error: leave the transaction with it (a rollback)
            open_, self.open = self.open, None
            open_.__exit__(*exc)  # type: ignore[arg-type]

    def write(self, bundle: Bundle) -> None:
        """Write the changed files of ``bundle`` (transaction opened on the first)."""
        changed = [done for done in bundle.files if not done.skipped and not done.unchanged]
        if not changed:
            return
        if self.open is None:
            self.open = ExitStack()
            self.open.enter_context(self.mem.transaction())
        mem, report = self.mem, self.report
        for done in changed:
            if done.job.walked.source in self.known:  # a new file has no old version to drop
                mem.delete(source=done.job.walked.source, scope=self.scope)
        sources = [done.job.walked.source for done in changed for _ in range(done.passages)]
        pids = mem.write_passages(self.scope, bundle.batch, sources, index_later=self.runs)
        start = 0
        for done in changed:
            f = done.job.walked
            mine = pids[start : start + done.passages]
            start += done.passages
            if done.encoding != "utf-8":
                report.decoded_as[f.source] = done.encoding
            if done.replaced_bytes:
                report.replaced_bytes[f.source] = done.replaced_bytes
            record = SourceRecord(
                source=f.source, pids=mine, xxh3=done.xxh3, encoding=done.encoding
            )
            put_record(mem.store, self.sid, record.model_copy(update=_stat_fields(f)))
            report.bytes_indexed += done.size
            self.bytes += done.size
        report.files_indexed += len(changed)
        report.passages += len(pids)
        self._index_full_segments()

    def _index_full_segments(self) -> None:
        """Index the runs that fill a segment as soon as they do (the segments a commit
        would cut from them, :func:`engram_sdk.memory.purge.segments_of_runs`), so the
        commit after the last bundle merges one segment at most."""
        size = 0
        for i, run in enumerate(self.runs):
            if i and size + len(run.keys) > purge.SEGMENT_CAP:
                self.mem.index_runs(self.scope, self.runs[:i])
                del self.runs[:i]
                return
            size += len(run.keys)

    def commit(self) -> int:
        """Index and commit what was written; the bytes committed."""
        if self.open is None:
            return 0
        self.mem.index_runs(self.scope, self.runs)
        open_, self.open = self.open, None
        open_.close()
        done, self.bytes, self.runs = self.bytes, 0, []
        return done


def _progress(enabled: bool, total: int) -> AbstractContextManager[Any]:
    if not enabled:
        return nullcontext(lambda _n: None)
    from engram_sdk.stores.progress import progress_bar

    return progress_bar(True, "ingest", total)
