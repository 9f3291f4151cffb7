"""Passage texts and headers in fragments: a few dozen passages per record, read once.

A search verifies candidates against their text. Reading a passage record per candidate
(a store read, a checksum, a decompression, a JSON header) costs 7-25 µs; a top-10 search
reads ten or more and listing every match of a common identifier reads tens of thousands.
Format 3 memories store the texts of consecutive passages together: a *fragment* holds the
passages of one *slot* (:data:`SLOT_BITS`: 16 consecutive ids) written by one commit, with
their ids, text offsets, line and byte spans, source names and the batch's scope,
metadata and time, then the concatenated UTF-8 texts in the zlib format
(:mod:`engram_sdk.memory.deflate`). A reader keeps
decoded fragments in a bounded cache (:class:`TextReader`), so a verified passage costs a
dictionary lookup and a slice; ``k="all"`` verifies a whole fragment with one search of its
text (:mod:`engram_sdk.memory.bulk_verify`).

Records (namespace ``mem.text``): key = scope id (4 bytes) + slot (4) + the position of
the fragment's first passage in the slot (1), big-endian; a slot holds one fragment per
commit that added passages to it. A reader finds a passage's fragment by key lookups
(never a cursor walk: a damaged B-tree page must give a named error, not an abort in
LMDB): the fragment starting at the passage itself (a chat turn), then the one starting
the slot (an ingest batch), then every start. The per-passage records of ``mem.passage``
keep their JSON header (what ``forget`` filters on and what says a passage is live) with
an empty body. Deleting passages rewrites their fragments without them, under the key of
their new first passage (:func:`drop_texts`); a scope's are deleted with it. Readers only ask for live passages (candidates come from the index, minus
tombstones), and the text of a committed passage never changes, so a cached slot read
from committed state stays right whatever is committed later (a new passage in the slot is
not found there, and the slot is read again). Only a slot read while a transaction may
have been open (``Store.last_commit()`` is None) is checked against the scope's generation
(:meth:`engram_sdk.memory.index.TrigramIndex.generation`): a rolled-back write's ids can
be used again by another process.
"""

from __future__ import annotations

import json
import struct
import threading
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xxhash

from engram_sdk.memory.deflate import compress
from engram_sdk.memory.fold import fold_fast
from engram_sdk.stores import Store, StoreCorruptError

TEXTS = "mem.text"
SLOT_BITS = 4  # a fragment's passages share their id >> SLOT_BITS
FRAGMENT_BYTES = 48 << 10  # text per fragment before a new one starts (within a slot)
DEFAULT_CACHE_BYTES = 256 << 20  # decoded fragment text a reader keeps
_MAGIC = b"ETX1"
_HEAD = struct.Struct("<4sIIB")  # magic, passages, JSON length, codec
_RAW, _ZLIB = 0, 1
_NOT_PLAIN = np.zeros(256, bool)  # non-ASCII bytes and where str.splitlines also breaks
_NOT_PLAIN[128:] = True
_NOT_PLAIN[list(b"\r\x0b\x0c\x1c\x1d\x1e")] = True
_IN_SLOT = (1 << SLOT_BITS) - 1  # a passage's position in its slot: pid & _IN_SLOT
_THREADS_OVER = 4 << 20  # compress on threads when a commit holds more text than this


def slot_prefix(sid: int, slot: int) -> bytes:
    """Key prefix of every fragment of a slot."""
    return sid.to_bytes(4, "big") + slot.to_bytes(4, "big")


class _made_once:  # (lower case: used as a decorator, as functools.cached_property)
    """A property computed on first use and then stored as a plain attribute of the
    instance, so later reads cost an attribute lookup. Unlike ``functools.cached_property``
    on Python 3.11, no lock: two threads may both compute it once, and the values are equal
    (zlib decompression releases the GIL, and a lock would serialize it across fragments)."""

    def __init__(self, compute: Any) -> None:
        self.compute = compute
        self.__doc__ = compute.__doc__
        self.name = compute.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


@dataclass
class Fragment:
    """One fragment: passage ids and text offsets read at once; spans, sources and header
    parsed, and the text decompressed, on first use (a slot of chat turns holds dozens of
    one-passage fragments, and a search needs one)."""

    key: bytes
    digest: int
    pids: list[int]
    offsets: list[int]  # byte offsets of each passage's text, then the end
    raw: bytes  # the record, for what is parsed on first use
    tail: int  # where spans start in ``raw``
    meta_len: int
    codec: int
    at: dict[int, int] = field(default_factory=dict)
    _folded: dict[int, str] = field(default_factory=dict)
    # parsed on first use, then plain attributes (_made_once): a search reads them once per
    # fragment it verifies

    @_made_once
    def spans(self) -> list[list[int]]:
        """line_start, line_end, byte_start, byte_end per passage."""
        n = len(self.pids)
        return np.frombuffer(self.raw, "<i8", 4 * n, self.tail).reshape(n, 4).tolist()

    @_made_once
    def source_ix(self) -> list[int]:
        """Each passage's source, as an index into ``head["sources"]``."""
        n = len(self.pids)
        return np.frombuffer(self.raw, "<u4", n, self.tail + 32 * n).tolist()

    @_made_once
    def head(self) -> dict[str, Any]:
        """scope, sources (names), metadata and created, shared by the fragment's passages."""
        at = self.tail + 36 * len(self.pids)
        return json.loads(self.raw[at : at + self.meta_len])

    @_made_once
    def text(self) -> bytes:
        """Every passage's UTF-8 text, concatenated (decompressed on first use)."""
        payload = memoryview(self.raw)[self.tail + 36 * len(self.pids) + self.meta_len :]
        return zlib.decompress(payload) if self.codec == _ZLIB else bytes(payload)

    @_made_once
    def odd(self) -> frozenset[int]:
        """Positions of the passages that are not plain: non-ASCII, or with line breaks other
        than ``\\n`` (in a plain passage, byte offsets are str offsets)."""
        buf = np.frombuffer(self.text, np.uint8)
        bad = np.flatnonzero(_NOT_PLAIN[buf])
        at = np.searchsorted(np.asarray(self.offsets, np.int64), bad, "right") - 1
        return frozenset(np.unique(at).tolist())

    @_made_once
    def lower(self) -> bytes:
        """The text with ASCII letters lowered (made on first use, then kept)."""
        return self.text.lower()

    @property
    def lower_made(self) -> bool:
        """Whether :attr:`lower` was made already (using it then costs nothing)."""
        return "lower" in self.__dict__

    @property
    def nbytes(self) -> int:
        """Bytes it may come to hold: the record, its text (about 3x the compressed record)
        and the lowered copy (made for ``k="all"``), counted ahead."""
        return 7 * len(self.raw)

    def passage_text(self, i: int) -> str:
        return self.text[self.offsets[i] : self.offsets[i + 1]].decode("utf-8", "surrogatepass")

    def folded(self, i: int) -> str:
        """Passage ``i``'s text folded (:func:`engram_sdk.memory.fold.fold_fast`), kept: the
        pre-check of passages that are not plain."""
        found = self._folded.get(i)
        if found is None:
            found = self._folded[i] = fold_fast(self.passage_text(i))
        return found

    def meta(self, i: int) -> dict[str, Any]:
        """The JSON header fields of passage ``i`` (as in a format 2 passage record)."""
        h = self.head
        l0, l1, b0, b1 = self.spans[i]
        return {
            "pid": self.pids[i],
            "source": h["sources"][self.source_ix[i]],
            "scope": h["scope"],
            "line_start": l0,
            "line_end": l1,
            "byte_start": b0,
            "byte_end": b1,
            "metadata": h["metadata"],
            "created": h["created"],
        }


def encode_fragment(
    pids: Sequence[int],
    texts: Sequence[bytes],
    spans: Sequence[Sequence[int]],
    sources: Sequence[str],
    head: dict[str, Any],
) -> tuple[bytes, bytes]:
    """A fragment's record body, without its payload compressed yet: (prefix, raw text)."""
    names: dict[str, int] = {}
    source_ix = [names.setdefault(s, len(names)) for s in sources]
    meta = json.dumps({**head, "sources": list(names)}, separators=(",", ":")).encode()
    n = len(pids)
    offsets = np.zeros(n + 1, "<u4")
    np.cumsum([len(t) for t in texts], out=offsets[1:])
    prefix = (
        _HEAD.pack(_MAGIC, n, len(meta), _ZLIB)
        + np.asarray(pids, "<u4").tobytes()
        + offsets.tobytes()
        + np.asarray(spans, "<i8").reshape(n, 4).tobytes()
        + np.asarray(source_ix, "<u4").tobytes()
        + meta
    )
    return prefix, b"".join(texts)


def decode_fragment(key: bytes, raw: bytes) -> Fragment:
    """A fragment from its record (checked: a foreign record is named in the error)."""
    try:
        magic, n, meta_len, codec = _HEAD.unpack_from(raw, 0)
        if magic != _MAGIC or len(raw) < _HEAD.size + 4 * (n + 1) + 36 * n + meta_len:
            raise ValueError(f"magic {magic!r}, {len(raw)} bytes")
        at = _HEAD.size
        pids = np.frombuffer(raw, "<u4", n, at).tolist()
        offsets = np.frombuffer(raw, "<u4", n + 1, at + 4 * n).tolist()
    except (ValueError, struct.error) as exc:
        raise StoreCorruptError(
            f"passage text fragment {key.hex()} in namespace {TEXTS!r} is not a fragment ({exc})",
            expected="a format 3 passage text fragment",
        ) from exc
    tail = at + 4 * n + 4 * (n + 1)
    digest = xxhash.xxh3_64_intdigest(raw)
    return Fragment(key, digest, pids, offsets, raw, tail, meta_len, codec, {p: i for i, p in enumerate(pids)})  # fmt: skip


def fragment_key(sid: int, first_pid: int) -> bytes:
    """Record key of the fragment whose first passage is ``first_pid``."""
    return slot_prefix(sid, first_pid >> SLOT_BITS) + (first_pid & _IN_SLOT).to_bytes(1, "big")


def slot_fragments(
    store: Store, sid: int, slot: int, starts: Sequence[int] | None = None
) -> list[tuple[bytes, bytes]]:
    """The fragment records of a slot that start at ``starts`` (positions in the slot;
    default all), by key lookups: a search never walks the store with a cursor (a damaged
    B-tree page must give a named error, not an abort inside LMDB)."""
    prefix = slot_prefix(sid, slot)
    keys = [
        prefix + n.to_bytes(1, "big") for n in (range(_IN_SLOT + 1) if starts is None else starts)
    ]
    return [(k, raw) for k, raw in zip(keys, store.get_many(TEXTS, keys), strict=True) if raw]


def write_texts(
    store: Store,
    sid: int,
    pids: Sequence[int],
    texts: Sequence[bytes],
    spans: Sequence[Sequence[int]],
    sources: Sequence[str],
    head: dict[str, Any],
) -> None:
    """Store the texts of new passages ``pids`` (ascending, consecutive), in fragments cut
    at slot boundaries and every :data:`FRAGMENT_BYTES` of text, numbered after those the
    slot already holds. ``head``: scope, metadata and created, shared by the batch."""
    groups: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, pid in enumerate(pids):
        if i > start and (pid >> SLOT_BITS != pids[start] >> SLOT_BITS or size >= FRAGMENT_BYTES):
            groups.append((start, i))
            start, size = i, 0
        size += len(texts[i])
    if len(pids):
        groups.append((start, len(pids)))
    parts = [
        encode_fragment(pids[a:b], texts[a:b], spans[a:b], sources[a:b], head) for a, b in groups
    ]
    total = sum(len(t) for _, t in parts)
    if total > _THREADS_OVER:
        with ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(compress, (t for _, t in parts)))
    else:
        bodies = [compress(t) for _, t in parts]
    items = [
        (fragment_key(sid, pids[a]), prefix + body)
        for (a, _), (prefix, _), body in zip(groups, parts, bodies, strict=True)
    ]
    store.put_many(TEXTS, items)


def drop_texts(store: Store, sid: int, pids: Iterable[int]) -> None:
    """After passages ``pids`` were deleted: rewrite each fragment holding some of them
    without them (under the key of its new first passage), or delete it when none is left."""
    gone = set(pids)
    for slot in sorted({p >> SLOT_BITS for p in gone}):
        for key, raw in slot_fragments(store, sid, slot):
            frag = decode_fragment(key, raw)
            keep = [i for i, p in enumerate(frag.pids) if p not in gone]
            if len(keep) == len(frag.pids):
                continue
            store.delete(TEXTS, key)
            if not keep:
                continue
            names = frag.head["sources"]
            prefix, text = encode_fragment(
                [frag.pids[i] for i in keep],
                [frag.text[frag.offsets[i] : frag.offsets[i + 1]] for i in keep],
                [frag.spans[i] for i in keep],
                [names[frag.source_ix[i]] for i in keep],
                {k: v for k, v in frag.head.items() if k != "sources"},
            )
            new_key = fragment_key(sid, frag.pids[keep[0]])
            store.put(TEXTS, new_key, prefix + compress(text))


def drop_scope_texts(store: Store, sid: int) -> None:
    """Delete every fragment of a scope."""
    store.delete_many(TEXTS, [k for k, _ in store.scan(TEXTS, sid.to_bytes(4, "big"))])


class TextReader:
    """Decoded fragments of every scope, least recently used first out, at most
    ``max_bytes`` of text (fragments are read a whole slot at a time)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        # slot -> (generation read at, fragments, read from committed state only)
        self._slots: OrderedDict[tuple[int, int], tuple[int, list[Fragment], bool]] = OrderedDict()
        self._lock = threading.Lock()

    def locate(
        self, store: Store, sid: int, generation: int, pid: int
    ) -> tuple[Fragment, int] | None:
        """The fragment holding passage ``pid`` and its position there (None: no text)."""
        key = (sid, pid >> SLOT_BITS)
        item = self._slots.get(key)
        if item is not None and (item[2] or item[0] == generation):
            try:  # noqa: SIM105 - (contextlib.suppress costs more than the lookup)
                self._slots.move_to_end(key)
            except KeyError:  # another thread evicted it meanwhile
                pass
            for frag in item[1]:
                i = frag.at.get(pid)
                if i is not None:
                    return frag, i
        for starts in ([pid & _IN_SLOT, 0], None):  # its own start (a chat turn), the slot's
            # start (an ingest batch); else every start in the slot
            frags = self._read_slot(store, sid, generation, key, item, starts)
            for frag in frags:
                i = frag.at.get(pid)
                if i is not None:
                    return frag, i
            item = self._slots.get(key)
        return None

    def _read_slot(
        self,
        store: Store,
        sid: int,
        generation: int,
        key: tuple[int, int],
        item: tuple[int, list[Fragment], bool, int] | None,
        starts: Sequence[int] | None,
    ) -> list[Fragment]:
        """Fragments of a slot read at ``starts`` (None: all), added to those known."""
        committed = store.last_commit() is not None  # (None: maybe a transaction's writes)
        valid = item is not None and (item[2] or item[0] == generation)
        known = {f.key: f for f in item[1]} if valid and item is not None else {}
        by_digest = {(f.key, f.digest): f for f in known.values()}
        read = {}
        wanted = None if starts is None else sorted(set(starts))
        for fkey, raw in slot_fragments(store, *key, starts=wanted):
            old = by_digest.get((fkey, xxhash.xxh3_64_intdigest(raw)))
            read[fkey] = old if old is not None else decode_fragment(fkey, raw)
        if starts is None:
            known = {}  # the whole slot was read: what is gone from it goes
        frags = list({**known, **read}.values())
        trusted = committed and (not known or bool(item and item[2]))
        size = sum(f.nbytes for f in frags)
        with self._lock:
            gone = self._slots.pop(key, None)
            if gone is not None:
                self.nbytes -= gone[3]
            self._slots[key] = (generation, frags, trusted, size)
            self.nbytes += size
            while self.nbytes > self.max_bytes and len(self._slots) > 1:
                _, evicted = self._slots.popitem(last=False)
                self.nbytes -= evicted[3]
        return frags

    def fragments(
        self, store: Store, sid: int, generation: int, pids: Sequence[int]
    ) -> Iterator[tuple[Fragment, list[int]]]:
        """Each fragment holding some of ``pids`` (ascending) with their positions in it, in
        order; ids without text are skipped."""
        frag: Fragment | None = None
        run: list[int] = []
        for pid in pids:
            if frag is not None:
                i = frag.at.get(pid)
                if i is not None:
                    run.append(i)
                    continue
                yield frag, run
                frag, run = None, []
            found = self.locate(store, sid, generation, pid)
            if found is not None:
                frag, run = found[0], [found[1]]
        if frag is not None:
            yield frag, run


_readers: weakref.WeakKeyDictionary[Any, TextReader] = weakref.WeakKeyDictionary()


def reader_of(owner: Any) -> TextReader:
    """The text reader that goes with ``owner`` (a memory's index: one per memory)."""
    reader = _readers.get(owner)
    if reader is None:
        reader = _readers[owner] = TextReader()
    return reader
