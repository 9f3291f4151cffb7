"""Format 3 passage texts in fragments: what is read equals what was written.

Oracles: the bytes of the ingested files (each passage is ``file[byte_start:byte_end]``),
the texts given to ``add``, the live passage records (which ids exist), a brute-force scan
of those texts for every match of a query, and the same memory rewritten in the format 2
layout (texts in passage records) for the migration.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from engram_sdk.memory import Memory
from engram_sdk.memory.fold import fold
from engram_sdk.memory.memory import PASSAGES, SOURCES, passage_key
from engram_sdk.memory.text_store import SLOT_BITS, TEXTS, TextReader, decode_fragment

FILES = {
    "plain.py": "".join(f"def f{i}(x):\n    return x + {i}  # Shared_Name\n\n" for i in range(900)),
    "crlf.txt": "first line\r\nShared_Name here\r\n\x0csecond page\r\n" * 40,
    "unicode.md": "Crème brûlée shared_name at the Café.\nİstanbul STRASSE straße\n\n" * 60,
    "spaced.py": "x  =   shared_name(\t1 )\nY = SHARED_NAME\n\n" * 50,
}
QUERIES = ["shared_name", "Shared_Name", "SHARED", "x = shared", "crème", "straße", "page", "zzq"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("frag-corpus")
    for name, text in FILES.items():
        (root / name).write_bytes(text.encode())
    return root


@pytest.fixture(scope="module")
def mem(corpus, tmp_path_factory):
    m = Memory.open(f"lmdb://{tmp_path_factory.mktemp('frag') / 'm'}", durable=False)
    m.ingest(corpus, progress=False)
    for i in range(150):  # one-passage adds: many fragments per slot, across slots
        m.add(f"turn {i} says Shared_Name {i * 7}", source=f"turn-{i}", metadata={"n": i})
    yield m
    m.close()


def _live(mem: Memory, sid: int) -> dict[int, dict]:
    """Live passages: their records (the oracle of which ids exist), headers parsed."""
    out = {}
    for key, raw in mem.store.scan(PASSAGES, sid.to_bytes(4, "big")):
        out[int.from_bytes(key[4:8], "big")] = json.loads(raw.partition(b"\x00")[0])
    return out


def _expected_text(corpus: Path, head: dict) -> str:
    name = head["source"]
    if name.startswith("turn-"):
        i = int(name[5:])
        return f"turn {i} says Shared_Name {i * 7}"
    raw = (corpus / name).read_bytes()
    return raw[head["byte_start"] : head["byte_end"]].decode()


def test_every_passage_reads_back_the_bytes_it_was_made_of(mem, corpus):
    sid = mem.scope_id("default")
    live = _live(mem, sid)
    assert len(live) > 2 << SLOT_BITS  # several slots
    read = mem.passages(sid, list(live))
    assert all(p is not None for p in read)
    for p in read:
        assert p.text == _expected_text(corpus, live[p.pid]), p.pid
    in_fragments = {}
    for key, raw in mem.store.scan(TEXTS, sid.to_bytes(4, "big")):
        frag = decode_fragment(key, raw)
        assert all(p >> SLOT_BITS == frag.pids[0] >> SLOT_BITS for p in frag.pids)
        in_fragments.update({p: frag.passage_text(i) for i, p in enumerate(frag.pids)})
    assert set(in_fragments) == set(live)


def _brute_force(mem: Memory, corpus: Path, query: str, exact_case: bool) -> dict:
    """pid -> (line, snippet, exact) of every passage holding the query, by scanning texts
    (line None: a folded match that spans lines)."""
    sid = mem.scope_id("default")
    folded = fold(query)
    out = {}
    for pid, head in _live(mem, sid).items():
        text = _expected_text(corpus, head)
        lines = text.splitlines()
        at = text.find(query)
        if at >= 0:
            line = len((text[:at] + "x").splitlines()) - 1 if at > 0 else 0
        elif exact_case or folded not in fold(text):
            continue
        else:
            line = next((j for j, x in enumerate(lines) if folded in fold(x)), None)
        snippet = None if line is None else lines[line].strip()[:200]
        first = None if line is None else head["line_start"] + line
        out[pid] = (first, snippet, at >= 0)
    return out


@pytest.mark.parametrize("exact_case", [False, True])
def test_every_match_is_listed_with_its_line_and_snippet(mem, corpus, exact_case):
    for query in QUERIES:
        want = _brute_force(mem, corpus, query, exact_case)
        hits = mem.search(query, k="all", exact_case=exact_case)
        got = {h.passage_id: h for h in hits if h.phrase_match}
        assert set(got) == set(want), query
        for pid, (line, snippet, _) in want.items():
            if line is not None:
                assert (got[pid].line_start, got[pid].snippet) == (line, snippet), (query, pid)
        scores = {h.passage_id: h.score for h in hits}
        exact_scores = {scores[p] for p, w in want.items() if w[2]}
        folded_scores = {scores[p] for p, w in want.items() if not w[2]}
        assert len(exact_scores) <= 1 and len(folded_scores) <= 1
        if exact_scores and folded_scores:
            assert exact_scores.pop() > folded_scores.pop()


def test_deleted_passages_leave_their_fragments(tmp_path):
    """Oracle: the live passage records; fragments hold exactly the live passages (an emptied
    one stays, holding none); a dropped scope leaves none."""
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as mem:
        for i in range(90):
            mem.add(f"note {i} keep_word", source=f"s{i % 3}", metadata={"i": i})
        sid = mem.scope_id("default")
        assert len(mem.search("keep_word", k="all")) == 90
        mem.delete(source="s1")
        mem.forget(metadata={"i": 3})
        live = set(_live(mem, sid))
        stored = set()
        for key, raw in mem.store.scan(TEXTS, sid.to_bytes(4, "big")):
            stored.update(decode_fragment(key, raw).pids)
        assert stored == live and len(live) == 59
        assert {h.passage_id for h in mem.search("keep_word", k="all")} == live
        assert {h.passage_id for h in mem.search("keep_word", k=100)} == live
        mem.delete(scope="default")
        assert list(mem.store.scan(TEXTS)) == []


def test_a_bounded_reader_returns_the_same_texts(mem, corpus):
    """Oracle: the source bytes; the reader stays within its bound (one slot beyond)."""
    sid = mem.scope_id("default")
    live = _live(mem, sid)
    reader = TextReader(max_bytes=1 << 12)
    biggest = 0
    for pid, head in live.items():
        frag, i = reader.locate(mem.store, sid, 1, pid)
        assert frag.passage_text(i) == _expected_text(corpus, head)
        assert frag.meta(i)["line_start"] == head["line_start"]
        biggest = max(biggest, frag.nbytes)
    assert reader.nbytes <= (1 << 12) + 64 * biggest


def _to_format_2(mem: Memory) -> None:
    """Rewrite a format 3 memory as format 2 wrote it: texts compressed in their records."""
    with mem.transaction():
        for sid in mem.manifest.scopes.values():
            pids = list(_live(mem, sid))
            for p in mem.passages(sid, pids):
                head = p.model_dump_json(exclude={"text"}).encode()
                body = zlib.compress(p.text.encode(), 1)
                mem.store.put(PASSAGES, passage_key(sid, p.pid), head + b"\x00" + body)
            mem.store.delete_many(TEXTS, [k for k, _ in mem.store.scan(TEXTS)])
        manifest = json.loads(mem.store.get("mem.meta", b"manifest"))
        manifest["format_version"] = 2
        mem.store.put("mem.meta", b"manifest", json.dumps(manifest).encode())


def _answers(mem: Memory) -> list:
    out = []
    for q in QUERIES:
        out.append([h.model_dump() for h in mem.search(q, k="all")])
        out.append([h.model_dump() for h in mem.search(q, k=5)])
    return out


def test_a_format_2_memory_is_read_as_is_and_migrated_when_opened_for_writing(tmp_path, corpus):
    uri = f"lmdb://{tmp_path / 'm'}"
    with Memory.open(uri, durable=False) as mem:
        mem.ingest(corpus, progress=False)
        mem.add("a turn with shared_name", source="t", metadata={"k": 1})
        before = _answers(mem)
        _to_format_2(mem)
    reader = Memory.open(uri, mode="r")
    assert reader.manifest.format_version == 2
    assert list(reader.store.scan(TEXTS)) == []
    assert _answers(reader) == before
    migrate = f"from engram_sdk.memory import Memory; Memory.open({uri!r}).close()"
    subprocess.run([sys.executable, "-c", migrate], check=True, timeout=120)
    # the reader opened at format 2 reads the migrated records from their fragments
    assert all(raw.endswith(b"\x00") for _, raw in reader.store.scan(PASSAGES))
    assert _answers(reader) == before
    reader.close()
    with Memory.open(uri, durable=False) as mem:
        assert mem.manifest.format_version == 3
        assert _answers(mem) == before
        assert mem.store.count(SOURCES) == len(FILES) + 1


@pytest.mark.parametrize("exact_case", [False, True])
def test_top_k_hits_are_true_matches_exact_ones_first(mem, corpus, exact_case):
    """Oracle: the brute-force scan; top-k fills k with true matches, exact-case ones first
    (it may stop before finding every exact one: see ``EXTRA_CHECKS``)."""
    for query in QUERIES:
        want = _brute_force(mem, corpus, query, exact_case)
        top = [h for h in mem.search(query, k=5, exact_case=exact_case) if h.phrase_match]
        assert len(top) == min(5, len(want)), query
        for h in top:
            line, snippet, _ = want[h.passage_id]
            if line is not None:
                assert (h.line_start, h.snippet) == (line, snippet), query
        ranks = [(not want[h.passage_id][2], -h.score) for h in top]
        assert ranks == sorted(ranks), query  # exact-case matches first, then by score
