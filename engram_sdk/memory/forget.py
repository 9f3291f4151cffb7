"""List what a memory holds and forget parts of it: by source, scope, metadata, age or TTL;
then give the space back.

TTLs: ``Memory.add(..., ttl=seconds)`` writes one key per passage in ``mem.expiry``,
ordered by expiry time, so finding what is due is a scan that stops at the first key in
the future (nothing to do costs one cursor step). Expired passages are removed at the next
write (``add``, a session turn) or by ``forget(expired=True)``.

Deleting passages removes their records, their ids from their sources' records and (via
``index.remove``) their postings; :func:`vacuum` then rewrites an LMDB store so the file
shrinks (LMDB reuses freed pages but never returns them to the file system).
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from engram_sdk.errors import InputError
from engram_sdk.memory.memory import PASSAGES, passage_key
from engram_sdk.memory.models import decode_passage
from engram_sdk.memory.sources import SourceInfo, get_record, put_record, scan_records
from engram_sdk.memory.text_store import drop_texts
from engram_sdk.memory.validate import check_metadata, check_seconds, check_sources

if TYPE_CHECKING:
    from engram_sdk.memory.memory import Memory

EXPIRY = "mem.expiry"


def list_sources(mem: Memory, scope: str | None = None) -> list[SourceInfo]:
    """Every source (of one scope, or of all), with its passage count and file stats."""
    scopes = [scope] if scope is not None else sorted(mem.manifest.scopes)
    out = []
    for name in scopes:
        sid = mem.scope_id(name)
        if sid is None:
            continue
        for r in scan_records(mem.store, sid):
            out.append(
                SourceInfo(
                    scope=name,
                    source=r.source,
                    passages=len(r.pids),
                    bytes=r.size,
                    mtime_ns=r.mtime_ns,
                    encoding=r.encoding,
                )
            )
    return out


def note_expiry(mem: Memory, scope_id: int, pids: Iterable[int], ttl: float) -> None:
    """Remember when ``pids`` expire (inside the caller's transaction)."""
    due = int((time.time() + ttl) * 1000).to_bytes(8, "big") + scope_id.to_bytes(4, "big")
    mem.store.put_many(EXPIRY, [(due + int(p).to_bytes(4, "big"), b"") for p in pids])


def purge_expired(mem: Memory, now: float | None = None) -> int:
    """Delete every passage whose TTL has run out; returns how many."""
    limit = int((now if now is not None else time.time()) * 1000)
    due: dict[int, list[int]] = defaultdict(list)
    keys = []
    for key, _ in mem.store.scan(EXPIRY):
        if int.from_bytes(key[:8], "big") > limit:
            break
        keys.append(key)
        due[int.from_bytes(key[8:12], "big")].append(int.from_bytes(key[12:16], "big"))
    if not keys:
        return 0
    with mem.transaction():
        removed = sum(remove_passages(mem, sid, pids) for sid, pids in due.items())
        mem.store.delete_many(EXPIRY, keys)
    return removed


def remove_passages(mem: Memory, scope_id: int, pids: list[int]) -> int:
    """Delete passages, their postings and their ids in their sources' records."""
    passages = [p for p in mem.passages(scope_id, pids) if p is not None]
    if not passages:
        return 0
    by_source: dict[str, set[int]] = defaultdict(set)
    for p in passages:
        by_source[p.source].add(p.pid)
    gone = [p.pid for p in passages]
    with mem.transaction():
        mem.store.delete_many(PASSAGES, [passage_key(scope_id, p) for p in gone])
        drop_texts(mem.store, scope_id, gone)
        mem.index.remove(scope_id, gone)
        for source, mine in by_source.items():
            record = get_record(mem.store, scope_id, source)
            if record is None:
                continue
            left = [p for p in record.pids if p not in mine]
            if left:
                put_record(mem.store, scope_id, record.model_copy(update={"pids": left}))
            else:
                mem.delete(source=source, scope=passages[0].scope)
    return len(gone)


def forget(
    mem: Memory,
    *,
    scope: str,
    sources: Any = None,
    metadata: Mapping[str, Any] | None = None,
    older_than: float | None = None,
    expired: bool = False,
) -> int:
    """Delete the passages of ``scope`` that match every filter given; returns how many.

    ``sources``: a source name or a list of them; ``metadata``: key/value equalities on what
    ``add`` stored; ``older_than``: seconds since they were stored; ``expired``: TTLs run out
    (any scope). With no filter at all this refuses (use ``Memory.delete(scope=...)``).
    """
    names = check_sources(sources)
    wanted = check_metadata(metadata) if metadata is not None else None
    age = check_seconds("older_than", older_than)
    removed = purge_expired(mem) if expired else 0
    if names is None and wanted is None and age is None:
        if not expired:
            raise InputError("forget needs sources=, metadata=, older_than= or expired=True")
        return removed
    sid = mem.scope_id(scope)
    if sid is None:
        return removed
    if names is not None and wanted is None and age is None:
        return removed + sum(mem.delete(source=n, scope=scope) for n in names)
    cutoff = time.time() - age if age is not None else None
    doomed = []
    for _, raw in mem.store.scan(PASSAGES, sid.to_bytes(4, "big")):
        p = decode_passage(raw)
        if names is not None and p.source not in names:
            continue
        if wanted is not None and any(p.metadata.get(k) != v for k, v in wanted.items()):
            continue
        if cutoff is not None and p.created > cutoff:
            continue
        doomed.append(p.pid)
    return removed + remove_passages(mem, sid, doomed)


class VacuumReport(BaseModel):
    """What :func:`vacuum` gave back."""

    uri: str
    bytes_before: int
    bytes_after: int


def vacuum(mem: Memory) -> VacuumReport:
    """Rewrite an ``lmdb://`` memory into a fresh file, so freed pages go back to the file
    system; the memory is closed afterwards (open it again). The writer lock is held
    throughout, and the new file replaces the old one in one rename."""
    from engram_sdk.stores import open_store
    from engram_sdk.stores.convert import copy_store
    from engram_sdk.stores.uri import parse_uri

    store = mem.store
    if store.backend != "lmdb":
        raise InputError(f"vacuum works on lmdb:// memories, not {store.uri}")
    folder = Path(parse_uri(store.uri)[1])
    before = os.path.getsize(folder / "data.mdb")
    scratch = folder.parent / f".{folder.name}.vacuum"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with mem.transaction():  # a consistent snapshot, copied with no writer in between
            fresh = open_store(f"lmdb://{scratch}", "w")
            try:
                copy_store(store, fresh)
            finally:
                fresh.close()
        # after the transaction (its commit checks the file it opened) but before close: the
        # store still holds the writer lock, so no write lands in the old file meanwhile
        os.replace(scratch / "data.mdb", folder / "data.mdb")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        mem.close()
    return VacuumReport(
        uri=store.uri, bytes_before=before, bytes_after=os.path.getsize(folder / "data.mdb")
    )
