"""The systems ``engram bench memory`` compares, behind one small interface.

Each answers the same queries over the same corpus: ``top`` (the first k files, for latency),
``files`` (every matching file, for recall), ``regex`` where it can, and ``update`` for the
re-ingest after a share of the files changed. Peers whose package is missing are skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path

from engram_sdk.memory import Memory


class System(ABC):
    """One searchable system over the corpus."""

    name: str
    supports_regex = True

    @abstractmethod
    def build(self, files: list[Path]) -> float:
        """Index the corpus; returns seconds."""

    def size(self) -> int | None:
        """Bytes of its index on disk (None: no index)."""
        return None

    @abstractmethod
    def top(self, query: str, k: int) -> list[str]:
        """Up to k matching files (case-folded substring)."""

    @abstractmethod
    def files(self, query: str) -> set[str]:
        """Every matching file (case-folded substring)."""

    def regex(self, pattern: str) -> set[str]:
        """Every file matching a case-insensitive regex."""
        raise NotImplementedError

    def update(self, changed: list[Path]) -> float:
        """Re-index after ``changed`` files were edited; returns seconds."""
        return 0.0

    def close(self) -> None:  # noqa: B027 - most systems hold nothing to release
        """Release the index."""


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Ripgrep(System):
    """``rg -F -l -i`` over the folder: no index, the recall oracle's twin."""

    name = "ripgrep"

    def __init__(self, corpus: Path) -> None:
        self.corpus = corpus

    def build(self, files: list[Path]) -> float:
        return 0.0

    def _run(self, args: list[str]) -> list[str]:
        out = subprocess.run(
            ["rg", "--no-messages", "-l", *args, str(self.corpus)], capture_output=True, text=True
        )
        return [str(Path(p).resolve()) for p in out.stdout.splitlines()]

    def top(self, query: str, k: int) -> list[str]:
        return self._run(["-F", "-i", "-m", "1", "--", query])[:k]

    def files(self, query: str) -> set[str]:
        return set(self._run(["-F", "-i", "--", query]))

    def regex(self, pattern: str) -> set[str]:
        return set(self._run(["-i", "-e", pattern]))


class Ours(System):
    """engram-sdk memory, in process, LMDB store."""

    name = "engram"

    def __init__(self, folder: Path, corpus: Path) -> None:
        self.folder, self.corpus = folder, corpus
        self.mem: Memory | None = None

    def build(self, files: list[Path]) -> float:
        self.mem = Memory.open(f"lmdb://{self.folder}", durable=False)
        return self.mem.ingest(self.corpus, progress=False).seconds

    def size(self) -> int | None:
        return folder_bytes(self.folder)

    def top(self, query: str, k: int) -> list[str]:
        assert self.mem is not None
        return [h.source for h in self.mem.search(query, k=k)]

    def files(self, query: str) -> set[str]:
        """Every matching file, one hit each (``one_per_source``: as ``rg -l`` lists them)."""
        assert self.mem is not None
        hits = self.mem.search(query, k="all", one_per_source=True)
        return {h.source for h in hits if h.phrase_match}

    def regex(self, pattern: str) -> set[str]:
        assert self.mem is not None
        hits = self.mem.search(pattern, k="all", regex=True, one_per_source=True)
        return {h.source for h in hits}

    def update(self, changed: list[Path]) -> float:
        assert self.mem is not None
        start = time.perf_counter()
        self.mem.ingest(self.corpus, progress=False)
        return time.perf_counter() - start

    def close(self) -> None:
        if self.mem is not None:
            self.mem.close()


def _like(query: str) -> str:
    return "%" + re.sub(r"([%_\\])", r"\\\1", query) + "%"


class SqliteTrigram(System):
    """SQLite FTS5 with the trigram tokenizer (stdlib ``sqlite3``); ``LIKE`` queries, which
    the trigram index accelerates and which are case-insensitive for ASCII."""

    name = "sqlite-fts5-trigram"
    supports_regex = False

    def __init__(self, folder: Path, corpus: Path) -> None:
        self.corpus = corpus
        self.path = folder / "fts.db"
        folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)

    def build(self, files: list[Path]) -> float:
        start = time.perf_counter()
        self.db.execute(
            "CREATE VIRTUAL TABLE docs USING fts5(path UNINDEXED, body, tokenize='trigram')"
        )
        with self.db:
            self.db.executemany(
                "INSERT INTO docs(path, body) VALUES (?, ?)",
                ((str(f), f.read_text(errors="replace")) for f in files),
            )
        return time.perf_counter() - start

    def size(self) -> int | None:
        return self.path.stat().st_size

    def top(self, query: str, k: int) -> list[str]:
        sql = "SELECT path FROM docs WHERE body LIKE ? ESCAPE '\\' LIMIT ?"
        return [r[0] for r in self.db.execute(sql, (_like(query), k))]

    def files(self, query: str) -> set[str]:
        sql = "SELECT path FROM docs WHERE body LIKE ? ESCAPE '\\'"
        return {r[0] for r in self.db.execute(sql, (_like(query),))}

    def update(self, changed: list[Path]) -> float:
        start = time.perf_counter()
        _stat_walk(self.corpus)
        with self.db:
            for f in changed:
                self.db.execute("DELETE FROM docs WHERE path = ?", (str(f),))
                self.db.execute(
                    "INSERT INTO docs(path, body) VALUES (?, ?)",
                    (str(f), f.read_text(errors="replace")),
                )
        return time.perf_counter() - start

    def close(self) -> None:
        self.db.close()


class Tantivy(System):
    """tantivy (the ``tantivy`` package) with its default word tokenizer and phrase queries:
    what a new user gets; substrings inside longer words are not found."""

    name = "tantivy"
    supports_regex = False

    def __init__(self, folder: Path, corpus: Path) -> None:
        import tantivy

        self.corpus = corpus
        self.tantivy = tantivy
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("path", stored=True, tokenizer_name="raw")
        builder.add_text_field("body", stored=False)
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema, path=str(folder))

    def build(self, files: list[Path]) -> float:
        start = time.perf_counter()
        writer = self.index.writer(heap_size=200_000_000, num_threads=2)
        for f in files:
            writer.add_document(
                self.tantivy.Document(path=str(f), body=f.read_text(errors="replace"))
            )
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()
        self.searcher = self.index.searcher()
        return time.perf_counter() - start

    def size(self) -> int | None:
        return folder_bytes(self.folder)

    def _query(self, query: str):
        words = re.findall(r"\w+", query)
        return self.index.parse_query('"' + " ".join(words) + '"', ["body"]) if words else None

    def _paths(self, query: str, limit: int) -> list[str]:
        q = self._query(query)
        if q is None:
            return []
        result = self.searcher.search(q, limit)
        return [self.searcher.doc(addr)["path"][0] for _, addr in result.hits]

    def top(self, query: str, k: int) -> list[str]:
        return self._paths(query, k)

    def files(self, query: str) -> set[str]:
        return set(self._paths(query, max(self.searcher.num_docs, 1)))

    def update(self, changed: list[Path]) -> float:
        start = time.perf_counter()
        _stat_walk(self.corpus)
        writer = self.index.writer(heap_size=100_000_000, num_threads=1)
        for f in changed:
            writer.delete_documents_by_term("path", str(f))  # "raw" tokenizer: exact
            writer.add_document(
                self.tantivy.Document(path=str(f), body=f.read_text(errors="replace"))
            )
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()
        self.searcher = self.index.searcher()
        return time.perf_counter() - start


def _stat_walk(root: Path) -> int:
    """What a peer must do to find changed files: stat every file."""
    n = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(dirpath, name))
            n += 1
    return n


def available_peers(scratch: Path, corpus: Path) -> list[System]:
    """ripgrep, SQLite FTS5 trigram and tantivy, those that are installed."""
    peers: list[System] = []
    if shutil.which("rg"):
        peers.append(Ripgrep(corpus))
    peers.append(SqliteTrigram(scratch / "sqlite", corpus))
    with contextlib.suppress(ImportError):
        peers.append(Tantivy(scratch / "tantivy", corpus))
    return peers
