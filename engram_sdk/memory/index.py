"""The trigram index: folded byte trigram → passage ids, in log-structured segments.

Per scope, the index is a list of immutable segments, oldest first, each covering passage
ids above those of the segments before it. A segment is a dictionary record (sorted
trigrams, document frequencies, list ends) and its coded posting lists (see
:mod:`engram_sdk.memory.postings`) cut into fixed-size pages. Every ``add`` writes one
segment and then merges the newest two while the older is at most twice the newer, so a
scope holds O(log n) segments and each posting is rewritten O(log n) times: appending chat
turns keeps lookups flat. Deleted passages are tombstoned, filtered at query time and
dropped for good by :meth:`TrigramIndex.compact`.

Records (namespace ``mem.tri``, keys prefixed by the 4-byte scope id):
``T`` the scope table (JSON), ``X`` tombstones (uint32), ``D`` + segment the dictionary,
``P`` + segment + page the posting pages. Segment ids never repeat within a scope, even
after the scope is dropped: the key of scope 0 + ``G`` (scope ids start at 1) holds the next
id a dropped scope would have used, so caches keyed by segment id never serve stale data.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engram_sdk.memory import purge
from engram_sdk.memory.list_cache import ListCache, ListKey
from engram_sdk.memory.postings import Postings, decode_all, decode_lists, encode_keys
from engram_sdk.memory.purge import (
    KeyRun,
    drop_dead,
    pid_range,
    segment_to_purge,
    segments_of_runs,
    split_by_pid,
)
from engram_sdk.memory.trigrams import passage_postings, sorted_unique
from engram_sdk.stores import Store

NS = "mem.tri"
PAGE = 1 << 15
INDEX_FORMAT = 2  # 2: segments carry their passage-id range (1: read, ranges unknown)
MERGE_RATIO = 2
LOOKUPS = 8192  # remembered dictionary lookups (see TrigramIndex.entries)
COMPACT_AT = 4096  # tombstones that trigger a compaction (or a quarter of the passages)


@dataclass
class SegmentInfo:
    """One segment of a scope: its id, number of postings and posting bytes, and the range
    and number of the passages it indexes (-1: unknown, a table of index format 1)."""

    seg: int
    postings: int
    nbytes: int
    lo: int = -1
    hi: int = -1
    passages: int = -1

    @property
    def known(self) -> bool:
        return self.lo >= 0


@dataclass
class ScopeTable:
    """The live segments of a scope, oldest first, and its passage count."""

    segments: list[SegmentInfo] = field(default_factory=list)
    next_segment: int = 1
    passages: int = 0

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": INDEX_FORMAT,
                "next_segment": self.next_segment,
                "passages": self.passages,
                "segments": [
                    [s.seg, s.postings, s.nbytes, s.lo, s.hi, s.passages] for s in self.segments
                ],
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ScopeTable:
        d = json.loads(raw)
        segs = [SegmentInfo(*s) for s in d["segments"]]
        return cls(segs, d["next_segment"], d["passages"])


@dataclass(frozen=True)
class Dictionary:
    """A segment's sorted trigrams with the df and byte range of each list."""

    trigrams: np.ndarray
    df: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def _scope(sid: int) -> bytes:
    return sid.to_bytes(4, "big")


def _dict_key(sid: int, seg: int) -> bytes:
    return _scope(sid) + b"D" + seg.to_bytes(4, "big")


class SegmentGone(KeyError):
    """A segment listed in this reader's view of a scope was removed by a commit (a merge,
    a purge) made after the view was read: the read must start again from a fresh view."""


def _page(pages: dict[bytes, bytes | None], key: bytes) -> bytes:
    raw = pages[key]
    if raw is None:
        raise SegmentGone(f"index page {key!r} is gone (merged by a later commit)")
    return raw


def _page_key(sid: int, seg: int, page: int) -> bytes:
    return _scope(sid) + b"P" + seg.to_bytes(4, "big") + page.to_bytes(4, "big")


_NEXT_AFTER_DROP = _scope(0) + b"G"


class TrigramIndex:
    """Postings of every scope in one store.

    Segment dictionaries and recently decoded posting lists are cached (segments never
    change; ``cache_bytes`` bounds the lists); the scope table is reread at the start of
    every operation (:meth:`refresh`).
    """

    def __init__(self, store: Store, *, cache_bytes: int | None = None) -> None:
        self.store = store
        self._tables: dict[int, ScopeTable] = {}
        self._dead: dict[int, np.ndarray] = {}
        self._dicts: dict[tuple[int, int], Dictionary] = {}
        self._live: dict[int, frozenset[int]] = {}
        self._raw: dict[int, tuple[bytes | None, bytes | None]] = {}
        self._no_dead_record: dict[int, bool] = {}
        self._generation: dict[int, int] = {}
        self._lookups: dict[tuple, Any] = {}
        self._seen_commit: dict[int, int | None] = {}  # the store's last commit at a refresh
        self._refreshing = threading.Lock()  # one refresh at a time publishes its view
        self.lists = ListCache() if cache_bytes is None else ListCache(cache_bytes)

    # ---- scope state ------------------------------------------------------------------------
    def refresh(self, sid: int) -> None:
        """Reread the scope's table and tombstones from the store (other processes' commits,
        or a rolled-back transaction of this one); every operation starts with it and then
        works on that one view. Cached dictionaries of segments no longer listed are dropped,
        so a segment id reused after a rollback is never served stale."""
        with self._refreshing:
            self._refresh(sid)

    def _refresh(self, sid: int) -> None:
        commit = self.store.last_commit()
        if commit is not None and self._seen_commit.get(sid) == commit and sid in self._raw:
            return  # nothing committed anywhere since the last refresh: no read at all
        raw, dead = self.store.get_many(NS, [_scope(sid) + b"T", _scope(sid) + b"X"])
        self._seen_commit[sid] = commit
        if self._raw.get(sid) == (raw, dead) and raw is not None:
            return  # nothing committed to the scope since the last refresh
        table = ScopeTable.from_json(raw) if raw else ScopeTable()
        if raw is None:  # a new (or dropped) scope: its segment ids start after any old one
            floor = self.store.get(NS, _NEXT_AFTER_DROP)
            table.next_segment = int.from_bytes(floor or (1).to_bytes(8, "little"), "little")
        self._tables[sid] = table
        self._dead[sid] = np.frombuffer(dead or b"", "<u4").astype(np.uint32)
        self._raw[sid] = (raw, dead)
        self._generation[sid] = self._generation.get(sid, 0) + 1
        self._no_dead_record[sid] = dead is None
        live = frozenset(s.seg for s in table.segments)
        if self._live.get(sid) != live:
            for key in [k for k in self._dicts if k[0] == sid and k[1] not in live]:
                del self._dicts[key]
            self._lookups.clear()
            self.lists.drop(sid, keep=live)
            self._live[sid] = live

    def _table_to_change(self, sid: int) -> ScopeTable:
        """The scope's table, fresh, for a write that changes it in place: the next refresh
        rereads it whatever happens to the write."""
        self.refresh(sid)
        self._raw.pop(sid, None)
        return self.table(sid)

    def generation(self, sid: int) -> int:
        """A number that changes whenever :meth:`refresh` finds the scope changed: what is
        derived from a scope's passages (their sources) is valid while it stays the same."""
        self.table(sid)
        return self._generation[sid]

    def table(self, sid: int) -> ScopeTable:
        """The scope's segment table as of the last :meth:`refresh`."""
        if sid not in self._tables:
            self.refresh(sid)
        return self._tables[sid]

    def tombstones(self, sid: int) -> np.ndarray:
        """Sorted ids of deleted passages whose postings are still in segments."""
        self.table(sid)
        return self._dead[sid]

    def segment_count(self, sid: int) -> int:
        """Live segments of a scope."""
        return len(self.table(sid).segments)

    def _save(self, sid: int, table: ScopeTable) -> None:
        self._tables[sid] = table
        self._raw.pop(sid, None)
        self.store.put(NS, _scope(sid) + b"T", table.to_json())
        if self._no_dead_record.get(sid, True):
            # an empty tombstone record: a missing key costs every lookup a check of its
            # neighbours in an LMDB store
            self.store.put(NS, _scope(sid) + b"X", self._dead[sid].astype("<u4").tobytes())
            self._no_dead_record[sid] = False

    def _save_dead(self, sid: int, dead: np.ndarray) -> None:
        self._dead[sid] = dead
        self._raw.pop(sid, None)
        self._no_dead_record[sid] = False
        self.store.put(NS, _scope(sid) + b"X", dead.astype("<u4").tobytes())

    # ---- writing ----------------------------------------------------------------------------
    def add(self, sid: int, pids: np.ndarray, folded: Sequence[bytes]) -> None:
        """Index passages ``pids`` (new ids, above every indexed one) from their index bytes
        (:func:`engram_sdk.memory.fold.index_bytes`); one segment, then merges."""
        self.add_keys(sid, len(pids), passage_postings(folded, np.asarray(pids, np.uint32)))

    def add_keys(self, sid: int, passages: int, keys: np.ndarray) -> None:
        """Index ``passages`` new passages from their sorted unique ``trigram << 32 | pid``
        keys (:func:`engram_sdk.memory.trigrams.passage_postings`)."""
        with self.store.transaction():
            table = self._table_to_change(sid)
            table.passages += passages
            if len(keys):
                table.segments += self._write_segments(sid, table, keys)
                self._merge_tail(sid, table)
            self._save(sid, table)

    def add_runs(self, sid: int, runs: Sequence[KeyRun]) -> None:
        """Index new passages from runs of their keys (ascending, disjoint id ranges above
        every indexed id, as ingest's workers encode them): one segment per group of runs
        (:func:`engram_sdk.memory.purge.segments_of_runs`), then merges."""
        with self.store.transaction():
            table = self._table_to_change(sid)
            table.passages += sum(r.passages for r in runs)
            for keys, passages, span in segments_of_runs(runs):
                table.segments.append(self._write_segment(sid, table, keys, passages, span))
            self._merge_tail(sid, table)
            self._save(sid, table)

    def remove(self, sid: int, pids: Sequence[int] | np.ndarray) -> None:
        """Tombstone deleted passages: never candidates again; then purge at most one
        segment (:mod:`engram_sdk.memory.purge`), or compact a table of unknown ranges."""
        pids = np.asarray(pids, np.uint32)
        if not len(pids):
            return
        with self.store.transaction():
            table = self._table_to_change(sid)
            table.passages = max(0, table.passages - len(pids))
            dead = sorted_unique(np.concatenate([self.tombstones(sid), pids]))
            self._save_dead(sid, dead)
            self._save(sid, table)
            if all(s.known for s in table.segments):
                self._purge(sid, table)
            if len(self.tombstones(sid)) > max(COMPACT_AT, table.passages // 4):
                self.compact(sid)

    def _purge(self, sid: int, table: ScopeTable) -> None:
        """Rewrite the most tombstoned segment without its dead postings, if one is due."""
        dead = self.tombstones(sid)
        ranges = [(s.lo, s.hi, s.passages) for s in table.segments]
        n = segment_to_purge(ranges, dead)
        if n is None:
            return
        old = table.segments[n]
        keys = drop_dead(decode_all(self._postings(sid, old)), dead)
        self.store.delete_many(NS, self._segment_keys(sid, old))
        self._dicts.pop((sid, old.seg), None)
        table.segments[n : n + 1] = self._write_segments(sid, table, keys) if len(keys) else []
        inside = (dead >= old.lo) & (dead <= old.hi)
        self._save_dead(sid, dead[~inside])
        self._save(sid, table)

    def compact(self, sid: int) -> None:
        """Merge every segment into one (cut at :data:`engram_sdk.memory.purge.SEGMENT_CAP` postings), without the
        postings of tombstoned passages."""
        with self.store.transaction():
            table = self._table_to_change(sid)
            if len(table.segments) > 1 or len(self.tombstones(sid)):
                self._merge(sid, table, len(table.segments), drop=self.tombstones(sid))
                self._save_dead(sid, np.zeros(0, np.uint32))
            self._save(sid, table)

    def drop_scope(self, sid: int) -> None:
        """Delete every record of a scope (segment ids keep counting up: see the module)."""
        with self.store.transaction():
            self.refresh(sid)
            floor = self.store.get(NS, _NEXT_AFTER_DROP)
            after = max(self.table(sid).next_segment, int.from_bytes(floor or b"", "little"))
            keys = [k for k, _ in self.store.scan(NS, _scope(sid))]
            self.store.delete_many(NS, keys)
            self.store.put(NS, _NEXT_AFTER_DROP, after.to_bytes(8, "little"))
        self._tables.pop(sid, None)
        self._dead.pop(sid, None)
        self._live.pop(sid, None)
        self._raw.pop(sid, None)
        self._no_dead_record.pop(sid, None)
        self._dicts = {k: v for k, v in self._dicts.items() if k[0] != sid}
        self._lookups.clear()
        self.lists.drop(sid)

    def _write_segments(self, sid: int, table: ScopeTable, keys: np.ndarray) -> list[SegmentInfo]:
        """New segments of ``keys`` (cut at :data:`engram_sdk.memory.purge.SEGMENT_CAP` postings), in id order."""
        return [self._write_segment(sid, table, part, n) for part, n in split_by_pid(keys)]

    def _write_segment(
        self,
        sid: int,
        table: ScopeTable,
        keys: np.ndarray,
        passages: int,
        span: tuple[int, int] | None = None,
    ) -> SegmentInfo:
        p = encode_keys(keys)
        seg = table.next_segment
        table.next_segment += 1
        head = np.array([len(p.trigrams)], "<u8").tobytes()
        body = p.trigrams.astype("<u4").tobytes() + p.df.astype("<u4").tobytes()
        items = [(_dict_key(sid, seg), head + body + p.ends.astype("<i8").tobytes())]
        items += [
            (_page_key(sid, seg, i // PAGE), p.blob[i : i + PAGE])
            for i in range(0, len(p.blob), PAGE)
        ]
        self.store.put_many(NS, items)
        return SegmentInfo(seg, len(keys), len(p.blob), *(span or pid_range(keys)), passages)

    def _merge_tail(self, sid: int, table: ScopeTable) -> None:
        segs = table.segments
        while (
            len(segs) >= 2
            and segs[-2].postings <= MERGE_RATIO * segs[-1].postings
            and segs[-2].postings + segs[-1].postings <= purge.SEGMENT_CAP
        ):
            self._merge(sid, table, 2, drop=None)

    def _merge(self, sid: int, table: ScopeTable, count: int, drop: np.ndarray | None) -> None:
        """Replace the newest ``count`` segments by one."""
        old = table.segments[-count:]
        parts = [decode_all(self._postings(sid, s)) for s in old]
        if len(parts) == 1:
            keys = parts[0]
        else:
            keys = np.concatenate(parts)
            del parts  # a merge holds the scope's every posting: one copy at a time
            keys.sort(kind="stable")  # sorted runs: a linear merge
        if drop is not None and len(drop):
            keys = drop_dead(keys, drop)
        del table.segments[-count:]
        self.store.delete_many(NS, [k for s in old for k in self._segment_keys(sid, s)])
        for s in old:
            self._dicts.pop((sid, s.seg), None)
        if len(keys):
            table.segments += self._write_segments(sid, table, keys)

    def _segment_keys(self, sid: int, s: SegmentInfo) -> list[bytes]:
        pages = (s.nbytes + PAGE - 1) // PAGE
        return [_dict_key(sid, s.seg)] + [_page_key(sid, s.seg, i) for i in range(pages)]

    def _postings(self, sid: int, s: SegmentInfo) -> Postings:
        d = self.dictionary(sid, s.seg)
        pages = (s.nbytes + PAGE - 1) // PAGE
        raws = self.store.get_many(NS, [_page_key(sid, s.seg, i) for i in range(pages)])
        if any(r is None for r in raws):
            raise SegmentGone(f"index pages of segment {s.seg} of scope {sid} are gone")
        return Postings(d.trigrams, d.df, d.ends, b"".join(raws))  # type: ignore[arg-type]

    # ---- reading ----------------------------------------------------------------------------
    def dictionary(self, sid: int, seg: int) -> Dictionary:
        """A segment's dictionary (cached: segments never change)."""
        d = self._dicts.get((sid, seg))
        if d is None:
            raw = self.store.get(NS, _dict_key(sid, seg))
            if raw is None:
                raise SegmentGone(f"index segment {seg} of scope {sid} is missing")
            n = int(np.frombuffer(raw, "<u8", count=1)[0])
            tri = np.frombuffer(raw, "<u4", count=n, offset=8)
            df = np.frombuffer(raw, "<u4", count=n, offset=8 + 4 * n)
            ends = np.frombuffer(raw, "<i8", count=n, offset=8 + 8 * n)
            d = Dictionary(tri, df, np.concatenate([[0], ends[:-1]]).astype(np.int64), ends)
            self._dicts[(sid, seg)] = d
        return d

    def entries(self, sid: int, seg: int, trigrams: np.ndarray) -> np.ndarray | None:
        """Dictionary entries of ``trigrams`` in a segment, rarest first (ties: by trigram);
        None if some trigram is absent. Remembered per query (segments never change)."""
        key = (sid, seg, trigrams.tobytes())
        if key in self._lookups:
            return self._lookups[key]
        d = self.dictionary(sid, seg)
        found = None
        if len(d.trigrams) and len(trigrams):
            at = np.minimum(np.searchsorted(d.trigrams, trigrams), len(d.trigrams) - 1)
            if (d.trigrams[at] == trigrams).all():
                found = at[np.argsort(d.df[at], kind="stable")]
                found.flags.writeable = False
        if len(self._lookups) >= LOOKUPS:
            self._lookups.clear()
        self._lookups[key] = found
        return found

    def remembered(self, key: tuple, value: Any, derive: Callable[..., Any]) -> Any:
        """``derive(self, key, value)``, remembered with the dictionary lookups (``key``
        names a segment, so entries go when it does)."""
        if key in self._lookups:
            return self._lookups[key]
        if len(self._lookups) >= LOOKUPS:
            self._lookups.clear()
        found = self._lookups[key] = derive(self, key, value)
        return found

    def read_lists(
        self,
        sid: int,
        wanted: Sequence[tuple[int, np.ndarray]],
        *,
        prefix_bytes: int | None = None,
        limits: Sequence[np.ndarray] | None = None,
    ) -> list[tuple[list[np.ndarray], list[bool]]]:
        """Passage ids of dictionary entries: ``wanted`` holds (segment, entry indices) pairs;
        returns, per pair, one sorted id array per entry and whether each was cut. All pages
        are read at once (through the page cache) and all lists decoded in one pass.

        With ``prefix_bytes`` (or ``limits``: per pair, bytes per entry), longer lists are cut
        to their first complete ids: a cut list is exact up to its last id. A limit should be
        at least 5 bytes (one varint), or a cut list may hold no id.
        """
        spans, keys = [], []
        for n, (seg, entries) in enumerate(wanted):
            d = self.dictionary(sid, seg)
            los, his = d.starts[entries], d.ends[entries]
            if limits is not None or prefix_bytes is not None:
                cap = limits[n] if limits is not None else prefix_bytes
                his = np.minimum(his, los + np.asarray(cap, np.int64))
            full = d.ends[entries]
            for lo, hi, end in zip(los.tolist(), his.tolist(), full.tolist(), strict=True):
                first, last = lo // PAGE, (hi - 1) // PAGE
                spans.append((seg, lo, hi, first, last, hi < end))
                keys += [_page_key(sid, seg, i) for i in range(first, last + 1)]
        unique_keys = list(dict.fromkeys(keys))
        pages = dict(zip(unique_keys, self.store.get_many(NS, unique_keys), strict=True))
        blobs, counts, cuts = [], [], []
        for seg, lo, hi, first, last, cut in spans:
            raw = _page(pages, _page_key(sid, seg, first))
            if last > first:
                raw = b"".join(_page(pages, _page_key(sid, seg, i)) for i in range(first, last + 1))
            blob = np.frombuffer(raw, np.uint8)[lo - first * PAGE : hi - first * PAGE]
            if cut:
                ends = np.flatnonzero(blob < 0x80)  # the last byte of every varint
                blob = blob[: ends[-1] + 1] if len(ends) else blob[:0]
                counts.append(len(ends))
            else:
                counts.append(-1)  # the dictionary's df, filled in below
            blobs.append(blob)
            cuts.append(cut)
        count_arr = self._counts(sid, wanted, counts)
        joined = np.concatenate(blobs) if len(blobs) > 1 else blobs[0] if blobs else blobs
        ids = decode_lists(np.asarray(joined, np.uint8), count_arr).astype(np.uint32)
        flat = np.split(ids, np.cumsum(count_arr)[:-1]) if len(counts) > 1 else [ids] * len(counts)
        out, at = [], 0
        for _seg, entries in wanted:
            out.append((flat[at : at + len(entries)], cuts[at : at + len(entries)]))
            at += len(entries)
        return out

    def _counts(
        self, sid: int, wanted: Sequence[tuple[int, np.ndarray]], counts: list[int]
    ) -> np.ndarray:
        """Ids per read list: those counted in a cut prefix, else the entry's df."""
        dfs = [self.dictionary(sid, seg).df[entries] for seg, entries in wanted]
        out = np.concatenate(dfs).astype(np.int64) if dfs else np.zeros(0, np.int64)
        counted = np.array(counts, np.int64)
        return np.where(counted >= 0, counted, out)

    def decoded(self, sid: int, seg: int, entries: np.ndarray) -> list[np.ndarray]:
        """Whole lists of dictionary ``entries`` of a segment (read-only arrays), through the
        list cache."""
        keys = [(sid, seg, e) for e in entries.tolist()]
        return self.lists.get_many(keys, self._read_whole)

    def decoded_keys(self, keys: list[ListKey]) -> list[np.ndarray]:
        """:meth:`decoded` by list-cache keys (scope, segment, entry) of one scope."""
        return self.lists.get_many(keys, self._read_whole)

    def _read_whole(self, keys: list[ListKey]) -> list[np.ndarray]:
        by_seg: dict[int, list[int]] = {}
        for _sid, seg, entry in keys:
            by_seg.setdefault(seg, []).append(entry)
        sid = keys[0][0]
        wanted = [(seg, np.array(e, np.int64)) for seg, e in by_seg.items()]
        found = {
            (sid, seg, e): ids.copy()  # not a view: the cache counts what it holds
            for (seg, entries), (lists, _) in zip(wanted, self.read_lists(sid, wanted), strict=True)
            for e, ids in zip(entries.tolist(), lists, strict=True)
        }
        return [found[k] for k in keys]


def member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted set, by binary search."""
    if not len(sorted_set):
        return np.zeros(len(values), bool)
    return sorted_set.take(sorted_set.searchsorted(values), mode="clip") == values
