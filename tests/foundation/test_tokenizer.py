"""Tokenizer: offline cl100k_base, round trips, canonical ids and their cache."""

import multiprocessing as mp
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from engram_sdk.canonical import CanonicalMap, canonical_key, normalize_token_text
from engram_sdk.errors import InputError, MissingDependencyError
from engram_sdk.tokenizer import Tokenizer, get_tokenizer, load_encoding


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return get_tokenizer()


def test_cl100k_known_ids(tok: Tokenizer) -> None:
    # ids published for cl100k_base ("hello world" is [15339, 1917])
    assert tok.encode("hello world") == [15339, 1917]
    assert tok.n_vocab == 100277
    assert tok.eot_id == 100257


def test_round_trip_and_count(tok: Tokenizer) -> None:
    text = "def f(x):\n    return x ** 2  # ünïcødé ✓ 数字\n"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.count(text) == len(ids)
    assert tok.encode_batch([text, "a b"]) == [ids, tok.encode("a b")]


def test_special_token_text_is_plain_text(tok: Tokenizer) -> None:
    ids = tok.encode("<|endoftext|>")
    assert tok.eot_id not in ids
    assert tok.decode(ids) == "<|endoftext|>"


def test_bad_inputs_name_the_problem(tok: Tokenizer) -> None:
    with pytest.raises(InputError, match="outside"):
        tok.decode([tok.n_vocab + 5])
    with pytest.raises(InputError, match="str"):
        tok.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown tiktoken encoding"):
        load_encoding("no_such_encoding")


def test_unavailable_encoding_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tiktoken.load

    def offline(*_a: object, **_k: object) -> bytes:
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken.load, "read_file_cached", offline)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    load_encoding.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match="not available offline"):
            load_encoding("p50k_base")
    finally:
        load_encoding.cache_clear()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello", "hello"),
        (" Café", "cafe"),
        ("ＡＢＣ", "abc"),  # NFKC folds full-width letters
        ("   ", " "),  # whitespace-only keeps one space
        ("\n\n", " "),
        (" \tX  ", "x"),
        ("Ångström", "angstrom"),
    ],
)
def test_normalisation(raw: str, expected: str) -> None:
    assert normalize_token_text(raw) == expected


def test_invalid_utf8_is_keyed_by_its_byte_level_spelling() -> None:
    assert canonical_key(b"\xe6\x95") == "\u00e6\u0137"  # GPT-2 byte-level: 0xE6 → æ, 0x95 → ķ


def test_canonical_table_against_independent_oracle(tok: Tokenizer) -> None:
    cmap = tok.canonical
    enc = tok.encoding
    table = cmap.table
    assert table.shape == (tok.n_vocab,) and table.dtype == np.int32
    # ids are dense and numbered in order of first appearance
    first_seen = np.unique(table, return_index=True)[1]
    assert np.all(np.diff(first_seen) > 0)
    assert cmap.size == table.max() + 1
    # two ids share a canonical id iff their keys are equal (checked on a sample)
    rng = np.random.default_rng(0)
    sample = rng.choice(100256, size=3000, replace=False)

    def key(tid: int) -> object:
        b = enc.decode_single_token_bytes(int(tid))
        try:
            text = b.decode("utf-8")
        except UnicodeDecodeError:
            return b
        t = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
        t = "".join(c for c in t if not unicodedata.combining(c)).lower()
        t = " ".join(t.replace("\t", " ").replace("\r", " ").replace("\n", " ").split(" "))
        while "  " in t:
            t = t.replace("  ", " ")
        t = " " if t == " " else t.strip()
        return t or text

    keys = {int(t): key(int(t)) for t in sample}
    by_key: dict[object, set[int]] = {}
    for t, k in keys.items():
        by_key.setdefault(k, set()).add(int(table[t]))
    assert all(len(v) == 1 for v in by_key.values())
    assert len({next(iter(v)) for v in by_key.values()}) == len(by_key)
    assert 0.15 < cmap.reduction < 0.5


def test_canonicalize_passes_negative_ids(tok: Tokenizer) -> None:
    ids = np.array([[15339, -1], [1917, 220]])
    out = tok.canonicalize(ids)
    assert out[0, 1] == -1
    assert out[0, 0] == tok.canonical.table[15339]


def _load_in_child(folder: str, q: "mp.Queue[int]") -> None:
    enc = load_encoding()
    q.put(CanonicalMap.for_encoding(enc, "cl100k_base", folder=Path(folder)).size)


@pytest.mark.slow  # three spawned interpreters
def test_cache_survives_concurrent_builders_and_corruption(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    q: mp.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_load_in_child, args=(str(tmp_path), q)) for _ in range(3)]
    for p in procs:
        p.start()
    sizes = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert len(set(sizes)) == 1
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    files[0].write_bytes(b"garbage")  # a corrupt cache is rebuilt, not trusted
    rebuilt = CanonicalMap.for_encoding(load_encoding(), "cl100k_base", folder=tmp_path)
    assert rebuilt.size == sizes[0]
    assert np.load(files[0]).shape == (100277,)
