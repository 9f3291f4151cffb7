"""Verification of candidates against the stored text, and the hits it produces.

Candidates come from the index; only the stored text decides. Texts come from fragments
(format 3: :mod:`engram_sdk.memory.text_store`) or from passage records (format 2, opened
read-only); headers are decoded lazily (only for hits and for filters).
"""

from __future__ import annotations

import fnmatch
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from engram_sdk.memory.fold import fold_fast
from engram_sdk.memory.models import Hit
from engram_sdk.memory.text_store import TEXTS, Fragment, TextReader, decode_fragment
from engram_sdk.stores import Store

PASSAGES = "mem.passage"
FIRST_BATCH = 16  # enough for most top-10 searches
BATCH = 64
BULK_BATCH = 1024  # k="all": one store read per this many candidates
_HIT_FIELDS = set(Hit.model_fields)
_scan_json = (
    json.JSONDecoder().scan_once
)  # decode() less its whitespace skipping: headers have none
_ASCII_SPACE_RUN = r"[\t-\r\x1c- ]+"  # the ASCII characters str ``\s`` matches
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


@dataclass(slots=True)
class Loaded:
    """A stored passage, header still raw."""

    pid: int
    head: bytes
    text: str
    _meta: dict[str, Any] | None = None
    frag: Fragment | None = None  # format 3: the fragment holding it, at position ``at``
    at: int = 0

    @property
    def meta(self) -> dict[str, Any]:
        """The parsed JSON header (source, scope, lines, metadata)."""
        if self._meta is None:
            if self.frag is not None:
                self._meta = self.frag.meta(self.at)
            else:
                self._meta = _scan_json(self.head.decode(), 0)[0]
        return self._meta


@dataclass(frozen=True)
class Filters:
    """Which passages may be hits: sources (exact), a path glob, metadata equalities, and
    (``distinct``) none from a source already hit."""

    sources: frozenset[str] | None = None
    path_glob: str | None = None
    metadata: Mapping[str, Any] | None = None
    distinct: set[str] | None = None  # one hit per source: the sources hit so far

    @property
    def active(self) -> bool:
        return (
            self.sources is not None
            or self.path_glob is not None
            or bool(self.metadata)
            or self.distinct is not None
        )

    def note(self, hit: Hit) -> Hit:
        """Remember a hit's source (for ``distinct``); returns the hit."""
        if self.distinct is not None:
            self.distinct.add(hit.source)
        return hit

    def allows_source(self, source: str) -> bool:
        """Whether hits from ``source`` may pass the source and path filters."""
        if self.sources is not None and source not in self.sources:
            return False
        return self.path_glob is None or fnmatch.fnmatchcase(source, self.path_glob)

    def allows(self, p: Loaded) -> bool:
        m = p.meta
        if self.distinct is not None and m["source"] in self.distinct:
            return False
        if self.sources is not None and m["source"] not in self.sources:
            return False
        if self.path_glob is not None and not fnmatch.fnmatchcase(m["source"], self.path_glob):
            return False
        if self.metadata:
            have = m.get("metadata") or {}
            return all(have.get(k) == v for k, v in self.metadata.items())
        return True


TextOf = Callable[[int], str]
"""The text of a live passage whose record holds none (format 3), by id."""


def load(store: Store, sid: int, pids: Sequence[int], text_of: TextOf) -> Iterator[Loaded]:
    """Stored passages by id, in order, skipping deleted ones (from their records)."""
    for pid, raw in zip(pids, records(store, sid, pids), strict=True):
        if raw is not None:
            yield decode(pid, raw, text_of)


def records(store: Store, sid: int, pids: Sequence[int]) -> list[bytes | None]:
    """Raw passage records by id (None where deleted), in one store read."""
    prefix = sid.to_bytes(4, "big")
    return store.get_many(PASSAGES, [prefix + p.to_bytes(4, "big") for p in pids])


def decode(pid: int, raw: bytes, text_of: TextOf) -> Loaded:
    """A passage from its raw record (the text decompressed, the header left raw)."""
    head, _, body = raw.partition(b"\x00")
    if not body:  # format 3 (a memory migrated while this reader had it open)
        return Loaded(pid, head, text_of(pid))
    return Loaded(pid, head, zlib.decompress(body).decode("utf-8", "surrogatepass"))


def from_fragments(
    store: Store, sid: int, generation: int, reader: TextReader, pids: Sequence[int]
) -> Iterator[Loaded]:
    """Passages by id, in order, from their fragments (format 3), skipping deleted ones."""
    for frag, run in reader.fragments(store, sid, generation, pids):
        yield from from_fragments_of(frag, run)


def scan(store: Store, sid: int, *, fragments: bool) -> Iterator[Loaded]:
    """Every stored passage of a scope (for queries with nothing to look up)."""
    if fragments:
        for key, raw in store.scan(TEXTS, sid.to_bytes(4, "big")):
            frag = decode_fragment(key, raw)
            yield from from_fragments_of(frag, range(len(frag.pids)))
        return
    for key, raw in store.scan(PASSAGES, sid.to_bytes(4, "big")):
        head, _, body = raw.partition(b"\x00")
        if body:  # (format 3 records are read from their fragments)
            pid = int.from_bytes(key[4:8], "big")
            yield Loaded(pid, head, zlib.decompress(body).decode("utf-8", "surrogatepass"))


def from_fragments_of(frag: Fragment, run: Iterable[int]) -> Iterator[Loaded]:
    """Passages ``run`` (positions) of one fragment."""
    text, offsets, ids = frag.text, frag.offsets, frag.pids
    for i in run:
        body = text[offsets[i] : offsets[i + 1]].decode("utf-8", "surrogatepass")
        yield Loaded(ids[i], b"", body, None, frag, i)


Loader = Callable[[list[int]], Iterator[Loaded]]
"""Passages by id, in order, skipping deleted ones (:func:`load` or a cache's)."""


def batches(loader: Loader, pids: np.ndarray, *, every: bool = False) -> Iterator[Loaded]:
    """``loader`` in batches, so a caller that stops early reads little (``every``: the
    caller reads them all, in batches of :data:`BULK_BATCH`)."""
    ids = pids.tolist()
    start, size = 0, BULK_BATCH if every else FIRST_BATCH
    while start < len(ids):
        chunk = ids[start : start + size]
        yield from loader(chunk)
        start, size = start + size, BULK_BATCH if every else BATCH


Locator = Callable[[str], int]
"""Where a passage's text matches (a character offset), or -1."""


def substring_locator(query: str, *, exact_case: bool) -> Locator:
    """Offset of the (folded, unless ``exact_case``) query in a passage text."""
    if exact_case:
        return lambda text: text.find(query)
    folded = fold_fast(query)
    ascii_query = folded.isascii()
    spaced = None
    if ascii_query and " " in folded:  # whitespace runs of ASCII text, without folding it
        spaced = re.compile(_ASCII_SPACE_RUN.join(re.escape(w) for w in folded.split(" ")))

    def locate(text: str) -> int:
        if ascii_query and text.isascii():
            if spaced is None:
                return text.lower().find(folded)
            m = spaced.search(text.lower())
            return -1 if m is None else m.start()
        return _folded_offset(text, folded)

    return locate


def _folded_offset(text: str, folded: str) -> int:
    """Offset in ``text`` of the line where the folded match starts (-1 if none)."""
    lines = text.splitlines(keepends=True)
    no_space = " " not in folded  # then an ASCII line holds it iff its lowercase does
    at = 0
    for line in lines:  # the usual case: the match lies inside one line
        if folded in (line.lower() if no_space and line.isascii() else fold_fast(line)):
            return at
        at += len(line)
    if folded not in fold_fast(text):
        return -1
    offsets = np.cumsum([0] + [len(x) for x in lines]).tolist()
    end = next(i for i in range(len(lines)) if folded in fold_fast("".join(lines[: i + 1])))
    start = next(s for s in range(end, -1, -1) if folded in fold_fast("".join(lines[s : end + 1])))
    return offsets[start]


def _newline_only(text: str) -> bool:
    """Whether ``str.splitlines`` would split ``text`` at ``\n`` only (memchr scans first)."""
    if "\r" in text or "\x0b" in text or "\x0c" in text:
        return False
    if "\x1c" in text or "\x1d" in text or "\x1e" in text:
        return False
    return text.isascii() or _OTHER_BREAKS.search(text) is None


def regex_locator(pattern: Any) -> Locator:
    """Offset of the first match of a compiled (re2 or re) pattern."""

    def locate(text: str) -> int:
        m = pattern.search(text)
        return -1 if m is None else m.start()

    return locate


def make_hit(p: Loaded, offset: int, score: float, phrase: bool) -> Hit:
    """A hit at the line holding character ``offset`` of the passage."""
    m = p.meta
    text = p.text
    if _newline_only(text):  # no splitting needed
        line = text.count("\n", 0, offset)
        end = text.find("\n", offset)
        snippet = text[text.rfind("\n", 0, offset) + 1 : end if end >= 0 else None]
        snippet = snippet.strip()[:200]
    else:  # the chunker numbers lines as str.splitlines does
        line = len((text[:offset] + "x").splitlines()) - 1 if offset > 0 else 0
        lines = text.splitlines()
        snippet = lines[line].strip()[:200] if line < len(lines) else ""
    first = m["line_start"] + line
    return trusted_hit(
        {
            "source": m["source"],
            "line_start": first,
            "line_end": first,
            "score": round(score, 4),
            "snippet": snippet,
            "passage_id": p.pid,
            "phrase_match": phrase,
            "scope": m["scope"],
            "metadata": m.get("metadata") or {},
        }
    )


def trusted_hit(fields: dict[str, Any]) -> Hit:
    """A :class:`Hit` from every one of its fields, already of the right types (they come
    from our own records), without validation: what ``Hit.model_construct`` does, minus its
    default handling, which costs ten times more than a hit's verification."""
    hit = _new_hit(Hit)
    _set_dict(hit, fields)
    _set_fields_set(hit, _HIT_FIELDS)  # (BaseModel's slots, set through their descriptors:
    _set_extra(hit, None)  # half the cost of object.__setattr__ by name)
    _set_private(hit, None)
    return hit


_new_hit = Hit.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def word_pattern() -> re.Pattern[str]:
    """Words of a query that score partial matches."""
    return re.compile(r"\w{3,}")
