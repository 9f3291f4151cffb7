"""``Memory``: ingest text and codebases into any store; recall by exact N-gram lookups."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import xxhash

from engram_sdk.errors import InputError
from engram_sdk.memory.chunking import CODE_SUFFIXES, Chunk, chunk_text
from engram_sdk.memory.index import SegmentGone, TrigramIndex
from engram_sdk.memory.models import (
    MEMORY_FORMAT_VERSION,
    READABLE_FORMATS,
    Context,
    Hit,
    MemoryManifest,
    Passage,
    SourceInfo,
    decode_passage,
    passage_record_heads,
)
from engram_sdk.memory.passage_batch import PassageBatch, encode_chunks
from engram_sdk.memory.purge import KeyRun
from engram_sdk.memory.text_store import drop_scope_texts, drop_texts, reader_of, write_texts
from engram_sdk.memory.validate import (
    check_bool,
    check_k,
    check_match,
    check_metadata,
    check_query,
    check_seconds,
    check_sources,
)
from engram_sdk.memory.write_gate import WriteGate
from engram_sdk.paths import data_dir
from engram_sdk.stores import Store, StoreVersionError, open_store
from engram_sdk.tokenizer import Tokenizer, get_tokenizer

if TYPE_CHECKING:
    from engram_sdk.memory.forget import VacuumReport

META, PASSAGES, SOURCES = "mem.meta", "mem.passage", "mem.source"
MAX_SCOPE_CHARS = 200
SEARCH_ATTEMPTS = 4  # a search that loses its segments to concurrent merges starts again


def default_uri() -> str:
    """``$ENGRAM_MEMORY_URI``, else an LMDB store in the per-user data folder."""
    return os.environ.get("ENGRAM_MEMORY_URI") or f"lmdb://{data_dir() / 'memory'}"


def check_label(kind: str, value: Any, max_chars: int = MAX_SCOPE_CHARS) -> str:
    """Scopes, sources and session ids: non-empty text without NUL or control characters."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{kind} must be a non-empty string, got {value!r}")
    if len(value) > max_chars:
        raise InputError(f"{kind} is {len(value)} characters long; at most {max_chars} allowed")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InputError(f"{kind} {value!r} contains control characters or undecodable bytes")
    return value


def source_key(scope_id: int, source: str) -> bytes:
    """Record key of a source (long sources are hashed to fit a key)."""
    raw = source.encode("utf-8")
    body = raw if len(raw) <= 300 else b"#" + xxhash.xxh3_128_digest(raw)
    return scope_id.to_bytes(4, "big") + body


def passage_key(scope_id: int, pid: int) -> bytes:
    """Record key of a passage."""
    return scope_id.to_bytes(4, "big") + pid.to_bytes(4, "big")


class Memory:
    """Episodic memory over a store: passages, an N-gram index, sources and sessions.

    Readers are thread-safe; one process writes at a time (the store's writer lock).
    """

    def __init__(self, store: Store, encoding: str = "cl100k_base") -> None:
        self.store = store
        self._lock = WriteGate()  # writes alone, searches together (write_gate.py)
        raw = store.get(META, b"manifest")
        self.manifest = (
            MemoryManifest.model_validate_json(raw) if raw else MemoryManifest(encoding=encoding)
        )
        if self.manifest.format_version not in READABLE_FORMATS:
            raise StoreVersionError(
                f"memory in {store.uri} has format {self.manifest.format_version}; this "
                f"engram-sdk reads formats {', '.join(map(str, READABLE_FORMATS))} only"
                + (
                    " (format 1 had a token-bigram index that missed matches): ingest again "
                    "into a new store"
                    if self.manifest.format_version < min(READABLE_FORMATS)
                    else ""
                )
            )
        self.index = TrigramIndex(store)
        if self.manifest.format_version < MEMORY_FORMAT_VERSION and not store.readonly:
            from engram_sdk.memory.migrate import migrate_to_fragments

            migrate_to_fragments(self)

    @functools.cached_property
    def tokenizer(self) -> Tokenizer:
        """The memory's tokenizer, loaded on first use (ingest and search never need it)."""
        return get_tokenizer(self.manifest.encoding)

    @classmethod
    def open(cls, uri: str | None = None, mode: str = "a", **options: Any) -> Memory:
        """Open (or create) a memory; default: an LMDB store under the user data folder."""
        uri = uri or default_uri()
        return cls(open_store(uri, mode, **options))

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals ------------------------------------------------------------------------
    def _save_manifest(self) -> None:
        self.store.put(META, b"manifest", self.manifest.model_dump_json().encode())

    def scope_id(self, scope: str, create: bool = False) -> int | None:
        """Numeric id of a scope (None if unknown and not created)."""
        sid = self.manifest.scopes.get(scope) if isinstance(scope, str) else None
        if sid is not None:
            return sid  # (a known scope was checked when it was made)
        check_label("scope", scope)
        if sid is None and create:
            sid = self.manifest.scopes[scope] = len(self.manifest.scopes) + 1
        return sid

    def scope_version(self, scope: str = "default") -> int | None:
        """A number that changes whenever the scope's passages may have changed (an add or a
        delete committed by this process or another); None for an unknown scope. What is
        derived from the scope's passages (a recall) is valid while it stays the same."""
        sid = self.scope_id(scope)
        if sid is None:
            return None
        self.index.refresh(sid)
        return self.index.generation(sid)

    def _write_passages(
        self,
        scope_id: int,
        scope: str,
        batch: PassageBatch,
        sources: Sequence[str],
        metadata: dict[str, Any] | None = None,
        index_later: list[KeyRun] | None = None,
    ) -> list[int]:
        """Store an encoded batch of passages and index it (or add its key runs to
        ``index_later``); returns their ids."""
        first = self.manifest.next_pid
        pids = list(range(first, first + len(batch)))
        self.manifest.next_pid += len(batch)
        spans = batch.spans.tolist()
        created = time.time()
        heads = passage_record_heads(
            pids=pids,
            spans=spans,
            sources=sources,
            scope=scope,
            metadata=metadata or {},
            created=created,
        )
        self.store.put_many(
            PASSAGES,
            [(passage_key(scope_id, p), head) for p, head in zip(pids, heads, strict=True)],
        )
        head = {"scope": scope, "metadata": metadata or {}, "created": created}
        write_texts(self.store, scope_id, pids, batch.texts, spans, sources, head)
        if index_later is None:
            self.index.add_runs(scope_id, batch.key_runs(first))
        else:
            index_later += batch.key_runs(first)
        return pids

    # ---- writing --------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes to the memory into one commit. Takes the memory's lock, then the
        store's, in the order every ``Memory`` method does: callers that write through the
        memory (sessions, ingest) use this, never ``store.transaction()`` alone."""
        with self._lock, self.store.transaction():
            yield

    def write_passages(
        self,
        scope: str,
        chunks: Sequence[Chunk] | PassageBatch,
        sources: Sequence[str],
        metadata: dict[str, Any] | None = None,
        *,
        index_later: list[KeyRun] | None = None,
    ) -> list[int]:
        """Store and index ``chunks`` (``sources[i]`` names chunk i's source) in ``scope``;
        returns their passage ids. Joins the caller's open store transaction, if any.
        Source records are the caller's (see :mod:`engram_sdk.memory.sources`). Chunks may
        come already encoded (:mod:`engram_sdk.memory.passage_batch`, as ingest's workers
        do). ``index_later``: the passages' key runs are appended there instead, for one
        :meth:`index_runs` call over several writes in the same transaction (ingest: one
        merge per segment, not per write)."""
        if not isinstance(chunks, PassageBatch):
            chunks = encode_chunks(chunks)
        with self._lock, self.store.transaction():
            sid = self.scope_id(scope, create=True)
            assert sid is not None
            pids = self._write_passages(sid, scope, chunks, sources, metadata, index_later)
            self._save_manifest()
        return pids

    def index_runs(self, scope: str, runs: Sequence[KeyRun]) -> None:
        """Index passages written with ``write_passages(..., index_later=runs)``, in the
        transaction that wrote them."""
        with self._lock, self.store.transaction():
            sid = self.scope_id(scope)
            if sid is not None and runs:
                self.index.add_runs(sid, runs)

    def add(
        self,
        text: str,
        source: str = "text",
        metadata: dict[str, Any] | None = None,
        scope: str = "default",
        *,
        ttl: float | None = None,
    ) -> list[int]:
        """Store ``text`` as passages under ``source``; returns their passage ids.

        ``ttl``: seconds after which the passages are forgotten (at the next write, or by
        ``forget(expired=True)``; see :mod:`engram_sdk.memory.forget`)."""
        from engram_sdk.memory.forget import note_expiry, purge_expired

        if not isinstance(text, str):
            raise InputError(f"text must be str, got {type(text).__name__}")
        check_label("source", source, 4096)
        metadata, ttl = check_metadata(metadata), check_seconds("ttl", ttl)
        with self._lock, self.store.transaction():
            purge_expired(self)
            sid = self.scope_id(scope, create=True)
            assert sid is not None
            code = Path(source).suffix.lower() in CODE_SUFFIXES
            batch = encode_chunks(chunk_text(text, code))
            pids = self._write_passages(sid, scope, batch, [source] * len(batch), metadata)
            key = source_key(sid, source)
            old = self.store.get(SOURCES, key)
            record = json.loads(old) if old else {"source": source, "pids": []}
            record["pids"] += pids
            self.store.put(SOURCES, key, json.dumps(record).encode())
            if ttl is not None:
                note_expiry(self, sid, pids, ttl)
            self._save_manifest()
        return pids

    def ingest(
        self,
        path: str | Path,
        scope: str = "default",
        progress: bool = True,
        max_file_bytes: int = 4 << 20,
        batch_bytes: int = 32 << 20,
    ) -> Any:
        """Ingest a file or folder incrementally (see :mod:`engram_sdk.memory.ingest`)."""
        from engram_sdk.memory.ingest import check_ingest_args, ingest_path

        root = check_ingest_args(path, max_file_bytes, batch_bytes)
        check_label("scope", scope)
        return ingest_path(self, root, scope, progress, max_file_bytes, batch_bytes)

    def delete(self, source: str | None = None, scope: str | None = None) -> int:
        """Delete one source (in ``scope``, default "default") or a whole scope; returns passages removed."""
        if source is None and scope is None:
            raise InputError("delete needs source=... or scope=...")
        with self._lock, self.store.transaction():
            if source is not None:
                sid = self.scope_id(scope or "default")
                return 0 if sid is None else self._delete_source(sid, source)
            sid = self.scope_id(scope)  # type: ignore[arg-type]
            if sid is None:
                return 0
            keys = [k for k, _ in self.store.scan(PASSAGES, sid.to_bytes(4, "big"))]
            self.store.delete_many(PASSAGES, keys)
            self.store.delete_many(
                SOURCES, [k for k, _ in self.store.scan(SOURCES, sid.to_bytes(4, "big"))]
            )
            drop_scope_texts(self.store, sid)
            self.index.drop_scope(sid)
            return len(keys)

    def _delete_source(self, sid: int, source: str) -> int:
        key = source_key(sid, source)
        raw = self.store.get(SOURCES, key)
        if raw is None:
            return 0
        pids = json.loads(raw)["pids"]
        self.store.delete_many(PASSAGES, [passage_key(sid, p) for p in pids])
        drop_texts(self.store, sid, pids)
        self.index.remove(sid, pids)
        self.store.delete(SOURCES, key)
        return len(pids)

    def compact(self, scope: str = "default") -> None:
        """Merge the scope's index segments into one and drop postings of deleted passages."""
        sid = self.scope_id(scope)
        if sid is None:
            return
        with self._lock:
            self.index.compact(sid)

    # ---- reading --------------------------------------------------------------------------
    def passages(self, scope_id: int, pids: Iterable[int]) -> list[Passage | None]:
        """Stored passages by id (None where deleted)."""
        raws = self.store.get_many(PASSAGES, [passage_key(scope_id, int(p)) for p in pids])
        out = [None if r is None else decode_passage(r) for r in raws]
        self.index.refresh(scope_id)
        generation = self.index.generation(scope_id)
        reader = reader_of(self.index)
        for p, raw in zip(out, raws, strict=True):
            if p is not None and raw is not None and raw.index(b"\x00") == len(raw) - 1:
                # format 3: the text is in a fragment
                found = reader.locate(self.store, scope_id, generation, p.pid)
                if found is not None:
                    p.text = found[0].passage_text(found[1])
        return out

    def search(
        self,
        query: str,
        k: int | Literal["all"] = 10,
        scope: str = "default",
        exact_case: bool = False,
        sources: Sequence[str] | None = None,
        *,
        regex: bool = False,
        path_glob: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        one_per_source: bool = False,
        match: Literal["phrase", "words"] = "phrase",
    ) -> list[Hit]:
        """Passages holding ``query`` (case-folded unless ``exact_case``), exact-case matches
        first; if fewer than ``k``, passages holding some of its words follow. ``k="all"``
        returns every matching passage. ``regex=True`` reads ``query`` as an RE2 pattern.
        ``match="words"``: only the ranking by words, without looking for the phrase (for a
        query that is not a quote, such as a question or names joined by the caller; the same
        hits as ``"phrase"`` when the phrase occurs nowhere, and the phrase search's hits when
        the words give fewer than ``k``; top-k, case-folded, not with ``regex``).
        ``sources``, ``path_glob`` (fnmatch on the source) and ``metadata`` (equalities)
        filter hits. ``one_per_source``: one hit per source (top-k: k distinct sources; with
        ``k="all"``: every matching file at its first matching passage, as ``rg -l`` lists
        them). See :mod:`engram_sdk.memory.search`."""
        from engram_sdk.memory.search import search

        check_query(query), check_k(k), check_bool("exact_case", exact_case)
        check_bool("one_per_source", one_per_source), check_match(match, k, regex, exact_case)

        def run() -> list[Hit]:
            return search(
                self,
                query,
                k=None if k == "all" else k,  # type: ignore[arg-type]
                scope=scope,
                exact_case=exact_case,
                sources=check_sources(sources),
                path_glob=path_glob,
                metadata=metadata,
                regex=regex,
                one_per_source=one_per_source,
                match=match,
            )

        with self._lock.reading():
            for _ in range(SEARCH_ATTEMPTS - 1):
                try:
                    return run()
                except SegmentGone:
                    pass  # another process's commit merged segments this search was reading
            return run()

    def context(
        self,
        query: str,
        max_tokens: int = 2000,
        scope: str = "default",
        tokenizer: Tokenizer | None = None,
        k: int = 50,
    ) -> Context:
        """The best passages with their sources, assembled under ``max_tokens``."""
        from engram_sdk.memory.search import assemble_context

        return assemble_context(self, query, max_tokens, scope, tokenizer or self.tokenizer, k)

    def sources(self, scope: str | None = None) -> list[SourceInfo]:
        """Every source (of ``scope``, or of all scopes) with its passage count and stats."""
        from engram_sdk.memory.forget import list_sources

        return list_sources(self, scope)

    def forget(
        self,
        *,
        scope: str = "default",
        sources: str | Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        older_than: float | None = None,
        expired: bool = False,
    ) -> int:
        """Delete passages matching every filter given; returns how many (see
        :func:`engram_sdk.memory.forget.forget`). ``compact``/``vacuum`` give space back."""
        from engram_sdk.memory.forget import forget

        with self._lock, self.store.transaction():
            return forget(
                self,
                scope=scope,
                sources=sources,
                metadata=metadata,
                older_than=older_than,
                expired=expired,
            )

    def vacuum(self) -> VacuumReport:
        """Rewrite an ``lmdb://`` memory so the space of deleted data goes back to the file
        system; closes the memory (see :func:`engram_sdk.memory.forget.vacuum`)."""
        from engram_sdk.memory.forget import vacuum

        return vacuum(self)

    def stats(self) -> dict[str, Any]:
        """Scopes, passages and sources per scope, bytes on disk."""
        out: dict[str, Any] = {"uri": self.store.uri, "scopes": {}}
        for scope, sid in self.manifest.scopes.items():
            prefix = sid.to_bytes(4, "big")
            out["scopes"][scope] = {
                "passages": self.store.count(PASSAGES, prefix),
                "sources": self.store.count(SOURCES, prefix),
                "index_segments": self.index.segment_count(sid),
            }
        out["bytes_on_disk"] = self.store.info().bytes_on_disk
        return out
