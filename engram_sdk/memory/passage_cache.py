"""A bounded, least-recently-used cache of decoded passages for top-k verification.

A top-k search verifies a handful of passages, each a store read, a checksum, a
decompression and a decode; repeated and related searches verify the same ones. Entries are
keyed by (scope, passage id) and stamped with the scope's generation
(:meth:`engram_sdk.memory.index.TrigramIndex.generation`): any commit to the scope (an add,
a delete, another process's write, a rolled-back one) changes the generation, and older
entries are never served. ``k="all"`` reads through it without filling it.

It serves format 2 memories (texts in passage records); a format 3 memory's texts come from
fragments, which its :class:`engram_sdk.memory.text_store.TextReader` caches
(:func:`loader_for` picks).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from engram_sdk.memory.index import TrigramIndex
from engram_sdk.memory.text_store import TextReader, reader_of
from engram_sdk.memory.verify import Loaded, Loader, TextOf, decode, from_fragments, load, records
from engram_sdk.stores import Store

if TYPE_CHECKING:
    from engram_sdk.memory.memory import Memory

DEFAULT_CACHE_CHARS = 16 << 20
_caches: weakref.WeakKeyDictionary[TrigramIndex, PassageCache] = weakref.WeakKeyDictionary()


class PassageCache:
    """Decoded passages, at most ``max_chars`` characters of text (0: caching off)."""

    def __init__(self, max_chars: int = DEFAULT_CACHE_CHARS) -> None:
        if max_chars < 0:
            raise ValueError(f"max_chars must be >= 0, got {max_chars}")
        self.max_chars = max_chars
        self.chars = 0
        self._items: OrderedDict[tuple[int, int], tuple[int, Loaded]] = OrderedDict()
        self._lock = threading.Lock()

    def load(
        self,
        store: Store,
        sid: int,
        generation: int,
        pids: Sequence[int],
        text_of: TextOf,
        *,
        keep: bool = True,
    ) -> Iterator[Loaded]:
        """:func:`engram_sdk.memory.verify.load` through the cache (``keep``: remember the
        passages read)."""
        found: dict[int, Loaded] = {}
        with self._lock:
            for pid in pids:
                item = self._items.get((sid, pid))
                if item is not None and item[0] == generation:
                    self._items.move_to_end((sid, pid))
                    found[pid] = item[1]
        missing = [pid for pid in pids if pid not in found]
        raws = dict(zip(missing, records(store, sid, missing), strict=True)) if missing else {}
        for pid in pids:
            p = found.get(pid)
            if p is None:
                raw = raws.get(pid)
                if raw is None:  # deleted
                    continue
                p = decode(pid, raw, text_of)  # decoded only when the caller gets this far
                if keep:
                    self._keep(sid, generation, p)
            yield p

    def _keep(self, sid: int, generation: int, p: Loaded) -> None:
        size = len(p.text) + len(p.head)
        if size > self.max_chars:
            return
        with self._lock:
            old = self._items.pop((sid, p.pid), None)
            if old is not None:
                self.chars -= len(old[1].text) + len(old[1].head)
            self._items[(sid, p.pid)] = (generation, p)
            self.chars += size
            while self.chars > self.max_chars:
                _, (_, gone) = self._items.popitem(last=False)
                self.chars -= len(gone.text) + len(gone.head)


def cache_of(index: TrigramIndex) -> PassageCache:
    """The passage cache that goes with an index (one per memory)."""
    cache = _caches.get(index)
    if cache is None:
        cache = _caches[index] = PassageCache()
    return cache


def loader_for(mem: Memory, sid: int, *, keep: bool = True) -> Loader:
    """How to read a scope's passages at its current generation: from fragments (format 3),
    else from passage records through the memory's passage cache (``keep``: filling it)."""
    index = mem.index
    generation, reader = index.generation(sid), reader_of(index)
    if mem.manifest.format_version >= 3:
        return lambda pids: from_fragments(mem.store, sid, generation, reader, pids)

    def text_of(pid: int) -> str:
        return _fragment_text(mem.store, sid, generation, reader, pid)

    if not keep:
        return lambda pids: load(mem.store, sid, pids, text_of)
    cache = cache_of(index)
    return lambda pids: cache.load(mem.store, sid, generation, pids, text_of)


def _fragment_text(store: Store, sid: int, generation: int, reader: TextReader, pid: int) -> str:
    found = reader.locate(store, sid, generation, pid)
    return "" if found is None else found[0].passage_text(found[1])
