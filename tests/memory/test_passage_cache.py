"""The passage cache serves only what the store holds at the scope's current generation."""

from __future__ import annotations

import zlib

from engram_sdk.stores import open_store

from engram_sdk.memory import Memory
from engram_sdk.memory.passage_cache import PassageCache
from engram_sdk.memory.verify import PASSAGES


def _record(text: str) -> bytes:
    return b'{"source":"s"}\x00' + zlib.compress(text.encode())


def _no_text(pid: int) -> str:
    raise AssertionError(f"passage {pid} has its text in its record")


def test_entries_of_an_older_generation_are_never_served(tmp_path):
    """Oracle: the record in the store; the cache is bounded by its characters."""
    store = open_store(f"lmdb://{tmp_path / 's'}", "a", durable=False)
    key = (1).to_bytes(4, "big") + (7).to_bytes(4, "big")
    store.put(PASSAGES, key, _record("first text"))
    cache = PassageCache(max_chars=64)
    assert [p.text for p in cache.load(store, 1, 1, [7, 8], _no_text)] == ["first text"]
    store.put(PASSAGES, key, _record("second text"))
    assert [p.text for p in cache.load(store, 1, 1, [7], _no_text)] == [
        "first text"
    ]  # same generation
    assert [p.text for p in cache.load(store, 1, 2, [7], _no_text)] == ["second text"]
    store.delete(PASSAGES, key)
    assert list(cache.load(store, 1, 3, [7], _no_text)) == []
    for pid in range(20, 30):  # fill past the bound
        store.put(PASSAGES, (1).to_bytes(4, "big") + pid.to_bytes(4, "big"), _record("x" * 20))
    assert len(list(cache.load(store, 1, 3, list(range(20, 30)), _no_text))) == 10
    assert cache.chars <= 64
    store.close()


def test_searches_after_writes_see_the_writes(tmp_path):
    """Warm caches (lists, passages, source map) and then an add, a delete and a rolled-back
    add: every search equals what was written (oracle: the texts added here)."""
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as mem:
        mem.add("alpha_token here", source="a")
        mem.add("alpha_token there", source="b")
        assert {h.source for h in mem.search("alpha_token", k=10)} == {"a", "b"}
        mem.delete(source="a")
        assert [h.source for h in mem.search("alpha_token", k=10)] == ["b"]
        try:
            with mem.store.transaction():
                mem.add("alpha_token rolled back", source="c")
                assert {h.source for h in mem.search("alpha_token", k=10)} == {"b", "c"}
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        assert [h.source for h in mem.search("alpha_token", k=10)] == ["b"]
        mem.add("alpha_token again", source="d")
        assert {h.source for h in mem.search("alpha_token", k=10)} == {"b", "d"}
        found = mem.search("alpha_token", k="all", one_per_source=True)
        assert {h.source for h in found} == {"b", "d"}
