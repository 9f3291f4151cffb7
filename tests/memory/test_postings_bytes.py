"""Posting lists coded byte for byte as the format says: per trigram, the first passage id
as is, then differences, each as LEB128 (oracle: a plain Python coder, list by list)."""

from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.memory import postings
from engram_sdk.memory.postings import decode_all, encode_keys, varint_encode


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@settings(max_examples=80)
@given(st.sets(st.tuples(st.integers(0, 2**24 - 1), st.integers(0, 2**32 - 1)), max_size=300))
def test_coded_postings_are_the_plain_python_coding(pairs):
    keys = np.array(sorted((t << 32) | p for t, p in pairs), np.uint64)
    lists: dict[int, list[int]] = {}
    for t, p in sorted(pairs):
        lists.setdefault(t, []).append(p)
    blob, ends = b"", []
    for pids in lists.values():
        deltas = [pids[0]] + [b - a for a, b in pairwise(pids)]
        blob += b"".join(leb128(d) for d in deltas)
        ends.append(len(blob))
    coded = encode_keys(keys)
    assert coded.blob == blob and coded.ends.tolist() == ends
    assert coded.trigrams.tolist() == list(lists) and coded.df.tolist() == [
        len(v) for v in lists.values()
    ]
    assert decode_all(coded).tolist() == keys.tolist()


@given(st.lists(st.integers(0, 2**32 - 1), max_size=200))
def test_varints_are_the_plain_python_coding(values):
    assert varint_encode(np.array(values, np.uint32)) == b"".join(leb128(v) for v in values)


def test_coding_in_small_chunks_gives_the_same_bytes(monkeypatch) -> None:
    monkeypatch.setattr(postings, "ENCODE_CHUNK", 5)
    rng = np.random.default_rng(7)
    for n in (1, 4, 5, 6, 11, 64):
        bits = rng.integers(0, 33, n)
        values = rng.integers(0, 2**32, n, dtype=np.uint64) >> (32 - bits).astype(np.uint64)
        values = values.astype(np.uint32)
        assert varint_encode(values) == b"".join(leb128(int(v)) for v in values), n


def test_decoding_in_small_pieces_gives_the_same_values(monkeypatch) -> None:
    monkeypatch.setattr(postings, "DECODE_CHUNK", 3)
    rng = np.random.default_rng(11)
    for n in (1, 2, 3, 9, 40):
        bits = rng.integers(0, 33, n)
        values = rng.integers(0, 2**32, n, dtype=np.uint64) >> (32 - bits).astype(np.uint64)
        values = values.astype(np.uint32)
        blob = b"".join(leb128(int(v)) for v in values)
        assert postings.varint_decode(blob).tolist() == values.tolist(), n
