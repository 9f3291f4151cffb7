"""The trigram index: coding round trips, segments merged log-structured, tombstones, reopen."""

import itertools
import json
import re

import numpy as np
import pytest
from engram_sdk.stores import StoreVersionError, open_store
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.memory import Memory
from engram_sdk.memory import index as index_module
from engram_sdk.memory.fold import fold, index_bytes
from engram_sdk.memory.index import NS, TrigramIndex
from engram_sdk.memory.models import MEMORY_FORMAT_VERSION
from engram_sdk.memory.postings import decode_all, encode_keys, varint_decode, varint_encode
from engram_sdk.memory.trigrams import passage_postings


@given(st.lists(st.integers(0, 2**32 - 1), max_size=300))
def test_varint_round_trip(values):
    arr = np.array(values, np.uint32)
    assert varint_decode(varint_encode(arr)).tolist() == values


@given(st.sets(st.tuples(st.integers(0, 2**24 - 1), st.integers(0, 2**32 - 1)), max_size=400))
def test_postings_round_trip(pairs):
    keys = np.array(sorted((t << 32) | p for t, p in pairs), np.uint64)
    assert decode_all(encode_keys(keys)).tolist() == keys.tolist()


@settings(max_examples=60)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=12))
def test_passage_trigrams_are_those_of_the_folded_text(texts):
    """Oracle: Python sets of 3-byte windows of fold(text) + two NULs, per passage."""
    pids = np.arange(10, 10 + len(texts), dtype=np.uint32)
    keys = passage_postings([index_bytes(t) for t in texts], pids)
    expected = set()
    for pid, t in zip(pids.tolist(), texts, strict=True):
        b = fold(t).encode("utf-8", "surrogatepass") + b"\x00\x00"
        expected |= {(int.from_bytes(b[i : i + 3], "big") << 32) | pid for i in range(len(b) - 2)}
    assert keys.tolist() == sorted(expected)


def test_segments_stay_logarithmic_and_lookups_complete(tmp_path):
    """Chat-like appends: one segment per add, merged so at most ~2 log2(n) remain; every
    appended turn is still found, and a reopened store reads the same segments."""
    uri = f"lmdb://{tmp_path / 'm'}"
    n = 600
    counts = []
    with Memory.open(uri, durable=False) as mem:
        for i in range(n):
            mem.add(f"turn {i}: the marker tok{i:05d}x is here", source=f"t{i}", scope="chat")
            counts.append(mem.index.segment_count(mem.scope_id("chat")))
        assert max(counts) <= 2 * np.log2(n) + 2
        assert counts[-1] < counts.index(max(counts)) + 100  # merges keep happening
        sid = mem.scope_id("chat")
        segs = [s.seg for s in mem.index.table(sid).segments]
    with Memory.open(uri, "r") as mem:
        assert [s.seg for s in mem.index.table(sid).segments] == segs
        for i in range(0, n, 37):
            hits = mem.search(f"tok{i:05d}x", k="all", scope="chat")
            assert [h.source for h in hits] == [f"t{i}"]


def test_deleted_passages_are_never_candidates_and_compact_drops_them(tmp_path):
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as mem:
        (deleted,) = mem.add("shared_word alpha", source="a")
        (kept,) = mem.add("shared_word beta", source="b")
        sid = mem.scope_id("default")
        mem.delete(source="a")
        assert mem.index.tombstones(sid).tolist() == [deleted]
        assert [h.source for h in mem.search("shared_word", k="all")] == ["b"]
        mem.compact()
        assert mem.index.tombstones(sid).tolist() == []
        assert mem.index.segment_count(sid) == 1
        # the postings themselves name only the kept passage now
        seg = mem.index.table(sid).segments[0]
        keys = decode_all(mem.index._postings(sid, seg))
        assert set((keys & np.uint64(0xFFFFFFFF)).tolist()) == {kept}
        assert [h.source for h in mem.search("shared_word", k="all")] == ["b"]


def test_index_records_are_versioned_and_old_memories_refused(tmp_path):
    uri = f"lmdb://{tmp_path / 'm'}"
    with Memory.open(uri, durable=False) as mem:
        mem.add("hello world")
        table = json.loads(mem.store.get(NS, mem.scope_id("default").to_bytes(4, "big") + b"T"))
        assert table["format"] == 2
        manifest = json.loads(mem.store.get("mem.meta", b"manifest"))
        manifest["format_version"] = 1
        mem.store.put("mem.meta", b"manifest", json.dumps(manifest).encode())
    with pytest.raises(StoreVersionError, match=r"format 1.*ingest again"):
        Memory.open(uri)
    assert MEMORY_FORMAT_VERSION == 3


def test_drop_scope_removes_every_record(tmp_path):
    store = open_store(f"lmdb://{tmp_path / 's'}", "a", durable=False)
    index = TrigramIndex(store)
    index.add(7, np.array([1, 2], np.uint32), [b"abc def", b"ghi"])
    assert store.count(NS, (7).to_bytes(4, "big")) >= 3
    index.drop_scope(7)
    assert store.count(NS, (7).to_bytes(4, "big")) == 0
    store.close()


def test_a_rolled_back_add_leaves_no_stale_segment(tmp_path):
    """An add inside a transaction that fails is undone in the store; the index must not keep
    serving (or reuse the id of) the segment it wrote in memory."""
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as mem:
        mem.add("first passage alpha_marker", source="a")
        with pytest.raises(RuntimeError), mem.store.transaction():
            mem.add("rolled back beta_marker", source="b")
            assert [h.source for h in mem.search("beta_marker", k="all")] == ["b"]
            raise RuntimeError("abort")
        assert mem.search("beta_marker", k="all") == []
        mem.add("third passage gamma_marker", source="c")
        assert [h.source for h in mem.search("gamma_marker", k="all")] == ["c"]
        assert [h.source for h in mem.search("alpha_marker", k="all")] == ["a"]


def test_many_deletions_compact_on_their_own(tmp_path, monkeypatch):
    """Tombstones never outnumber a quarter of the live passages (above COMPACT_AT)."""
    monkeypatch.setattr(index_module, "COMPACT_AT", 0)
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as mem:
        for i in range(40):
            mem.add(f"note {i} keep_marker", source=f"n{i}")
        sid = mem.scope_id("default")
        for i in range(0, 40, 2):
            mem.delete(source=f"n{i}")
            assert len(mem.index.tombstones(sid)) <= mem.index.table(sid).passages // 4
        assert mem.index.segment_count(sid) == 1  # compaction merged everything
        found = sorted(h.source for h in mem.search("keep_marker", k="all"))
        assert found == sorted(f"n{i}" for i in range(1, 40, 2))


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_fold_strips_exactly_the_combining_marks(text):
    """Oracle: the definition, character by character."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    kept = "".join(c for c in nfd if not unicodedata.combining(c))
    assert fold(text) == re.sub(r"\s+", " ", kept.lower())


def test_list_cache_returns_what_was_read_and_stays_under_its_bound():
    """ListCache: every answer equals the reader's (oracle: a dict of arrays), entries are
    read-only, the cache never holds more than its bound, and evicted lists are read again."""
    from engram_sdk.memory.list_cache import ListCache

    truth = {
        (sid, s, e): np.arange(e * 10, dtype=np.uint32)
        for sid in (1, 2)
        for s in (1, 2, 3)
        for e in range(1, 9)
    }
    reads: list[tuple[int, int, int]] = []

    def read(keys):
        reads.extend(keys)
        return [truth[k].copy() for k in keys]

    cache = ListCache(max_bytes=400)  # room for a few lists only
    for order in ([(1, 1, 3), (1, 2, 4)], [(1, 1, 8), (1, 1, 3)], list(truth)):
        got = cache.get_many(order, read)
        assert all(np.array_equal(g, truth[k]) for g, k in zip(got, order, strict=True))
        assert cache.nbytes <= 400
        assert cache.nbytes == sum(a.nbytes for a in cache._lists.values())
    assert all(not a.flags.writeable for a in cache._lists.values())
    before = len(reads)
    cache.get_many([list(truth)[-1]], read)  # the last one read: still cached
    assert len(reads) == before
    cache.get_many([(1, 1, 1)], read)  # evicted long ago: read again
    assert reads[-1] == (1, 1, 1)
    cache.get_many([(1, 3, 2), (2, 1, 2), (1, 2, 2)], read)
    held = dict(cache._lists)
    cache.drop(1, keep=[2])
    assert cache._lists == {k: a for k, a in held.items() if k[0] != 1 or k[1] == 2}
    assert cache.nbytes == sum(a.nbytes for a in cache._lists.values())
    cache.get_many([(1, 1, 2)], read)  # a dropped list is read again
    assert reads[-1] == (1, 1, 2)


def test_deletes_purge_one_capped_segment_at_a_time(tmp_path, monkeypatch):
    """Oracle: a dict of the live texts. Segments stay under the cap and cover ascending,
    disjoint id ranges; a delete rewrites at most one segment; tombstones only name ids
    some segment still holds; every search equals the oracle."""
    from engram_sdk.memory import purge

    monkeypatch.setattr(purge, "SEGMENT_CAP", 400)
    monkeypatch.setattr(purge, "PURGE_MIN", 4)
    rng = np.random.default_rng(3)
    live: dict[str, str] = {}
    gone: set[int] = set()
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as mem:
        for i in range(120):
            live[f"n{i}"] = f"note {i} purge_marker w{i % 7}x"
            mem.add(live[f"n{i}"], source=f"n{i}")
        sid = mem.scope_id("default")
        assert mem.index.segment_count(sid) > 3
        for _ in range(12):
            before = {s.seg for s in mem.index.table(sid).segments}
            for name in rng.choice(sorted(live), 5, replace=False).tolist():
                gone.update(h.passage_id for h in mem.search(live[name], k="all"))
                mem.delete(source=name)
                del live[name]
            segs = mem.index.table(sid).segments
            assert len(before - {s.seg for s in segs}) <= 5  # one purge per delete, at most
            assert all(s.postings <= 2 * 400 for s in segs)
            assert all(a.hi < b.lo for a, b in itertools.pairwise(segs))
            dead = mem.index.tombstones(sid).tolist()
            assert all(any(s.lo <= p <= s.hi for s in segs) for p in dead)
            held = set()
            for s in segs:
                held |= set(
                    (decode_all(mem.index._postings(sid, s)) & np.uint64(0xFFFFFFFF)).tolist()
                )
            assert held & gone <= set(dead)  # a deleted passage is purged or tombstoned
            found = {h.source for h in mem.search("purge_marker", k="all")}
            assert found == set(live)
            for w in range(7):
                want = {n for n, t in live.items() if f"w{w}x" in t}
                assert {h.source for h in mem.search(f"w{w}x", k="all")} == want
        assert len(mem.index.tombstones(sid)) < 60  # purged along the way
