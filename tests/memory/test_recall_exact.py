"""Exact recall: every substring query finds every passage that holds it.

Oracles: a brute-force scan of the stored passages (``fold(q) in fold(text)``, or ``q in
text`` for exact case), and ``rg -F -l`` / ``rg -F -l -i`` over the ingested folder.
Queries: identifiers of 1, 2 and 3+ cl100k tokens in every context (after a space, after
punctuation, at line start), phrases, 1- and 2-byte queries, and property-based substrings
at random offsets and at token boundaries.
"""

import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engram_sdk.memory import Memory, candidates
from engram_sdk.memory.fold import fold
from engram_sdk.memory.verify import scan
from engram_sdk.tokenizer import get_tokenizer

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["json/decoder.py", "json/encoder.py", "textwrap.py", "shlex.py", "fnmatch.py", "glob.py"]
EXTRA = {
    "notes/unicode.md": "Crème brûlée at the Café.\nİstanbul and STRASSE and straße.\n\tTabs\tand  spaces\n",
    "notes/errors.py": (
        "AttributeError\n(AttributeError)\nraise AttributeError('x')\nx=AttributeError\n"
        "  AttributeError: no\nself.data[key] = value\nreturn self.data[key]\n"
    ),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for rel in FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STDLIB / rel, root / rel)
    for rel, text in EXTRA.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture(scope="module")
def mem(corpus, tmp_path_factory):
    m = Memory.open(f"lmdb://{tmp_path_factory.mktemp('store') / 'm'}", durable=False)
    m.ingest(corpus, progress=False)
    yield m
    m.close()


@pytest.fixture(scope="module")
def passages(mem):
    return list(scan(mem.store, mem.scope_id("default"), fragments=True))


def oracle(passages, query, exact_case=False):
    """Passage ids whose stored text holds the query: no index involved."""
    if exact_case:
        return {p.pid for p in passages if query in p.text}
    q = fold(query)
    return {p.pid for p in passages if q in fold(p.text)}


def found(mem, query, exact_case=False):
    hits = mem.search(query, k="all", exact_case=exact_case)
    return {h.passage_id for h in hits if h.phrase_match}


def rg_files(corpus, query, fold_case):
    args = ["rg", "-F", "-l", "--no-messages", *(["-i"] if fold_case else []), "--", query]
    out = subprocess.run([*args, str(corpus)], capture_output=True, text=True)
    return {str(Path(p).resolve()) for p in out.stdout.splitlines()}


def identifier_queries():
    """Identifiers by cl100k token count, bare, after a space and after punctuation."""
    words = ["self", "return", "key", "x", "Attribute"]  # one token each
    words += ["AttributeError", "JSONDecodeError", "scanstring"]  # two or more
    words += ["py_encode_basestring_ascii", "c_make_encoder", "_default_decoder"]
    for w in words:
        yield w
        yield " " + w  # the after-a-space form: one token less, the case the old index lost
        yield "(" + w


QUERIES = [
    *identifier_queries(),
    "self.data[key]",
    "return self.data[key]",
    "raise AttributeError('x')",
    "def decode(self, s",
    "crème",
    "CREME",
    "straße",
    "tabs and spaces",
    "istanbul",
    "a",
    "e",
    "x=",
    "))",
    "ö",
    "not there at all zzzq",
]


@pytest.mark.parametrize("query", QUERIES)
def test_folded_search_finds_every_passage(mem, passages, query):
    assert found(mem, query) == oracle(passages, query)


@pytest.mark.parametrize("query", QUERIES)
def test_exact_case_search_finds_every_passage(mem, passages, query):
    assert found(mem, query, exact_case=True) == oracle(passages, query, exact_case=True)


@pytest.mark.skipif(shutil.which("rg") is None, reason="needs ripgrep")
@pytest.mark.parametrize("query", [q for q in QUERIES if q.isascii()])
def test_recall_against_ripgrep(mem, corpus, query):
    for fold_case in (True, False):
        expected = rg_files(corpus, query, fold_case)
        hits = mem.search(query, k="all", exact_case=not fold_case)
        assert expected <= {h.source for h in hits if h.phrase_match}


@pytest.mark.parametrize("window", [1, 2, 64])
def test_top_k_holds_only_true_matches_and_fills_k(mem, passages, window, monkeypatch):
    """Top-k reads candidates window by window (the first of ``window`` ids); whatever the
    size, the hits are true matches and there are k of them whenever k exist."""
    monkeypatch.setattr(candidates, "WINDOW_IDS", window)
    for query in ["self", " AttributeError", "e", "return", "def ", "encoder", "x=", "value"]:
        truth = oracle(passages, query)
        hits = mem.search(query, k=10)
        assert len(hits) == min(10, len(truth))
        assert {h.passage_id for h in hits} <= truth


def test_hits_point_at_the_matching_line(mem, corpus):
    (hit,) = mem.search("return self.data[key]", k="all")
    lines = Path(hit.source).read_text().splitlines()
    assert "return self.data[key]" in lines[hit.line_start - 1]
    assert hit.snippet == "return self.data[key]"


def _texts(corpus):
    return sorted((str(p.resolve()), p.read_text()) for p in corpus.rglob("*") if p.is_file())


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_substrings_are_found(mem, passages, corpus, data):
    """Any substring of a line, at any offset, any length: its file is among the hits, and
    the hits equal the brute-force oracle."""
    texts = _texts(corpus)
    path, text = data.draw(st.sampled_from(texts))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    line = data.draw(st.sampled_from(lines))
    start = data.draw(st.integers(0, len(line) - 1))
    end = data.draw(st.integers(start + 1, min(len(line), start + 40)))
    query = line[start:end]
    if not query.strip():
        return
    exact = data.draw(st.booleans())
    hits = found(mem, query, exact_case=exact)
    assert hits == oracle(passages, query, exact_case=exact)
    sources = {h.source for h in mem.search(query, k="all", exact_case=exact)}
    assert path in sources


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_token_boundary_substrings_are_found(mem, passages, corpus, data):
    """Queries cut at cl100k token boundaries (1-4 tokens), as a model would quote them."""
    tok = get_tokenizer("cl100k_base")
    path, text = data.draw(st.sampled_from(_texts(corpus)))
    line = data.draw(st.sampled_from([ln for ln in text.splitlines() if ln.strip()]))
    ids = tok.encode(line)
    start = data.draw(st.integers(0, len(ids) - 1))
    n = data.draw(st.integers(1, 4))
    query = tok.decode(ids[start : start + n])
    if not query.strip() or query not in line:
        return
    assert found(mem, query) == oracle(passages, query)
    assert path in {h.source for h in mem.search(query, k="all")}


@pytest.mark.parametrize("window", [1, 3, 64])
def test_windows_together_hold_every_match_and_only_trigram_holders(mem, passages, window):
    """candidates.windows: disjoint sorted windows whose union holds every match (oracle: a
    scan of the stored texts) and only passages holding every trigram (oracle: the
    trigram sets of the folded texts)."""
    from engram_sdk.memory.fold import fold_fast
    from engram_sdk.memory.trigrams import query_trigrams, trigram_ids

    sid = mem.scope_id("default")
    tri_sets = {
        p.pid: set(
            trigram_ids(fold_fast(p.text).encode("utf-8", "surrogatepass") + b"\0\0").tolist()
        )
        for p in passages
    }
    for query in ["self", "encoder", "AttributeError", "def decode(self, s", "return self"]:
        tris = query_trigrams(query)[1]
        parts = list(candidates.windows(mem.index, sid, tris, first=window))
        got = [i for part in parts for i in part.tolist()]
        assert len(got) == len(set(got))
        assert all((np.diff(part.astype(np.int64)) > 0).all() for part in parts)
        assert oracle(passages, query) <= set(got)
        assert all(set(tris.tolist()) <= tri_sets[i] for i in got)


@pytest.mark.parametrize("build_ratio", [0, 10**9])  # never / always a passage → source map
@pytest.mark.parametrize("query", ["self", " AttributeError", "e", "return self", "crème", "zzzq"])
def test_one_per_source_lists_every_matching_source_once(
    mem, passages, query, build_ratio, monkeypatch
):
    """k="all", one_per_source: exactly the sources with a matching passage (oracle: a scan
    of the stored texts), each once, at its lowest matching passage; with and without the
    passage → source map."""
    from engram_sdk.memory import source_map

    monkeypatch.setattr(source_map, "BUILD_RATIO", build_ratio)
    source_map._maps.clear()
    truth = oracle(passages, query)
    first: dict[str, int] = {}
    for p in sorted(passages, key=lambda p: p.pid):
        if p.pid in truth:
            first.setdefault(p.meta["source"], p.pid)
    hits = mem.search(query, k="all", one_per_source=True)
    assert {h.source: h.passage_id for h in hits} == first
    assert len(hits) == len(first)
    top = mem.search(query, k=3, one_per_source=True)
    assert len({h.source for h in top}) == len(top) <= 3
    assert len(top) >= min(3, len(first))  # top-k skips sources already hit: k distinct ones
    assert {h.source for h in top if h.phrase_match} <= set(first)


def test_one_per_source_follows_new_and_deleted_sources(tmp_path):
    """The passage → source map is rebuilt when the scope changes (oracle: the sources
    added and deleted here)."""
    with Memory.open(f"lmdb://{tmp_path / 'm'}", durable=False) as m:
        m.add("x = needle_word\n" * 3, source="a.py")
        assert [h.source for h in m.search("needle_word", k="all", one_per_source=True)] == ["a.py"]
        m.add("y = needle_word", source="b.py")
        m.add("nothing here", source="c.py")
        found = {h.source for h in m.search("needle_word", k="all", one_per_source=True)}
        assert found == {"a.py", "b.py"}
        m.delete(source="a.py")
        found = {h.source for h in m.search("needle_word", k="all", one_per_source=True)}
        assert found == {"b.py"}
        regex = m.search(r"needle_\w+", k="all", regex=True, one_per_source=True)
        assert [h.source for h in regex] == ["b.py"]


@pytest.mark.parametrize("build_ratio", [0, 10**9])  # never / always a passage → source map
def test_one_per_source_applies_source_and_path_filters(mem, passages, build_ratio, monkeypatch):
    """Oracle: the matching passages' sources, filtered by fnmatch and by the source list."""
    import fnmatch

    from engram_sdk.memory import source_map

    monkeypatch.setattr(source_map, "BUILD_RATIO", build_ratio)
    source_map._maps.clear()
    matching = {p.meta["source"] for p in passages if p.pid in oracle(passages, "self")}
    hits = mem.search("self", k="all", one_per_source=True, path_glob="*json*")
    assert {h.source for h in hits} == {s for s in matching if fnmatch.fnmatchcase(s, "*json*")}
    some = [*sorted(matching)[:2], "not/a/source.py"]
    hits = mem.search("self", k="all", one_per_source=True, sources=some)
    assert sorted(h.source for h in hits) == sorted(matching)[:2]
    assert mem.search("self", k="all", one_per_source=True, sources=[]) == []


NEAR_MISSES = ["self key", "return value", "data key", "the encoder", "s, e", "if not", "end)"]


@pytest.mark.parametrize("exact_case", [False, True])
def test_top_k_past_every_match_returns_every_match_at_its_line(mem, passages, exact_case):
    """With k above the number of matches, top-k checks every candidate, most of them holding
    the query's trigrams but not the query (the candidates it skips by searching ahead in a
    fragment): it returns every match, each hit at the line ``k="all"`` (another path) finds
    (scores differ: top-k weighs by a document-frequency bound, ``k="all"`` by the count)."""
    for query in [*NEAR_MISSES, "self", "encoder", "AttributeError", "crème"]:
        truth = oracle(passages, query, exact_case)
        hits = mem.search(query, k=len(truth) + 5, exact_case=exact_case)
        assert {h.passage_id for h in hits if h.phrase_match} == truth, query
        every = mem.search(query, k="all", exact_case=exact_case)
        where = {h.passage_id: (h.source, h.line_start, h.snippet) for h in every}
        for h in hits:
            if h.phrase_match:
                assert (h.source, h.line_start, h.snippet) == where[h.passage_id], query


def test_partial_hits_from_fragment_bytes_equal_the_general_path(mem):
    """Fewer than k passages hold the phrase: passages holding some of its words follow. They
    are built from fragment bytes without filters and from decoded passages with a filter
    that passes everything (``path_glob="*"``): the same hits, field for field."""
    queries = [
        "return self value zzq",
        "decoder encoder scanstring",
        "AttributeError spaces tabs",
        "crème brûlée straße encoder",
        "json textwrap shlex glob",
    ]
    some_partial = 0
    for query in queries:
        fast = mem.search(query, k=10)
        general = mem.search(query, k=10, path_glob="*")
        assert [h.model_dump() for h in fast] == [h.model_dump() for h in general], query
        some_partial += sum(not h.phrase_match for h in fast)
    assert some_partial >= 20


@pytest.mark.parametrize("exact_case", [False, True])
def test_top_k_on_fragments_equals_the_general_path_in_order(mem, exact_case):
    """Top-k verified on fragment bytes (no filters) returns the hits, in the order, that the
    general path (a filter passing everything) returns after its sort: best score first,
    then source, then line."""
    queries = ["self", "Attribute", "attributeerror", "ENCODER", "e", "x=", "def ", "json", "é"]
    for query in queries:
        fast = mem.search(query, k=10, exact_case=exact_case)
        general = mem.search(query, k=10, exact_case=exact_case, path_glob="*")
        assert [h.model_dump() for h in fast] == [h.model_dump() for h in general], query
        keys = [(-h.score, h.source, h.line_start) for h in fast]
        assert keys == sorted(keys), query


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_top_k_past_every_match_finds_random_substrings_everywhere(mem, passages, corpus, data):
    """Random substrings (any offset, across words and spaces, either case mode), asked for
    one more hit than there are matches: top-k checks every candidate, skipping ahead in
    fragments, and returns exactly the brute-force matches."""
    _path, text = data.draw(st.sampled_from(_texts(corpus)))
    line = data.draw(st.sampled_from([ln for ln in text.splitlines() if ln.strip()]))
    start = data.draw(st.integers(0, len(line) - 1))
    query = line[start : data.draw(st.integers(start + 1, min(len(line), start + 30)))]
    if not query.strip():
        return
    exact = data.draw(st.booleans())
    truth = oracle(passages, query, exact)
    hits = mem.search(query, k=len(truth) + 1, exact_case=exact)
    assert {h.passage_id for h in hits if h.phrase_match} == truth
