"""Byte trigrams of folded text: what the index stores and what a query looks up.

A trigram is its three bytes read as a 24-bit big-endian number, so it needs no hashing and
never collides. Every passage is indexed with two NUL bytes after it, so a one- or two-byte
query at the very end of a passage still has a trigram (``"ab\\0"``) and short queries become
a range of the sorted trigram dictionary.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from engram_sdk.memory.fold import FOLD_TABLE, fold_fast, fold_spaces

PAD = b"\x00\x00"
GROUP_BYTES = 1 << 15  # text per group: its keys (about as many as bytes) sort in cache
GROUP_PASSAGES = 256  # passages per group: their index in the group fits a byte


def trigram_ids(data: bytes | np.ndarray) -> np.ndarray:
    """Trigram id (uint32) at every offset of ``data`` (len - 2 of them)."""
    b = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    if len(b) < 3:
        return np.zeros(0, np.uint32)
    padded = np.zeros((len(b) + 4) // 4 * 4, np.uint8)
    padded[: len(b)] = b
    # overlapping big-endian 4-byte windows, one per offset; the top three bytes are the trigram
    windows = np.lib.stride_tricks.as_strided(
        padded.view(">u4"), shape=(len(b) - 2,), strides=(1,), writeable=False
    )
    return (windows >> 8).astype(np.uint32)


def passage_postings(
    folded: Sequence[bytes], pids: np.ndarray, *, threads: bool = True
) -> np.ndarray:
    """Unique ``trigram << 32 | pid`` keys (uint64, sorted) of passages.

    ``folded`` holds each passage's bytes from :func:`engram_sdk.memory.fold.index_bytes`;
    byte folding (lowercase, whitespace runs) is applied here in bulk. Work runs in groups of
    at most :data:`GROUP_PASSAGES` passages and about :data:`GROUP_BYTES` bytes, small enough
    to stay in cache and to sort 32-bit ``trigram << 8 | passage in group`` keys (twice as fast
    as 64-bit ones); the sorted groups then merge in one stable sort. ``threads``: run groups
    on every core (numpy releases the GIL in sorts and bulk arithmetic).
    """
    groups, start, size = [], 0, 0
    for i, f in enumerate(folded):
        size += len(f) + len(PAD)
        full = size >= GROUP_BYTES or i + 1 - start >= GROUP_PASSAGES
        if full or i == len(folded) - 1:
            groups.append((folded[start : i + 1], pids[start : i + 1]))
            start, size = i + 1, 0
    if not groups:
        return np.zeros(0, np.uint64)
    if len(groups) == 1 or not threads:
        parts = [_group_keys(*g) for g in groups]
    else:
        with ThreadPoolExecutor(min(len(groups), os.cpu_count() or 1)) as pool:
            parts = list(pool.map(lambda g: _group_keys(*g), groups))
    if len(parts) == 1:
        return parts[0]
    return np.sort(np.concatenate(parts), kind="stable")  # sorted runs: a linear merge


def _group_keys(folded: Sequence[bytes], pids: np.ndarray) -> np.ndarray:
    """Sorted unique keys of at most 256 passages with ascending ``pids``."""
    raw = np.frombuffer((PAD.join(folded) + PAD).translate(FOLD_TABLE), np.uint8)
    local = np.repeat(np.arange(len(folded), dtype=np.uint8), [len(f) + len(PAD) for f in folded])
    keep = fold_spaces(raw)
    data, local = raw[keep], local[keep]
    keys = trigram_ids(data) << np.uint32(8)  # trigram << 8 | passage in the group
    keys |= local[:-2]
    keys = keys[local[:-2] == local[2:]]  # trigrams inside one passage (and its padding)
    keys.sort()
    small = _dedup_sorted(keys)
    owner = np.asarray(pids, np.uint32)[small & np.uint32(0xFF)]
    return ((small >> np.uint32(8)).astype(np.uint64) << np.uint64(32)) | owner


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` without its first-call cost (it imports ``numpy.ma``: ~70 ms of every
    CLI search)."""
    return _dedup_sorted(np.sort(values))


def _dedup_sorted(keys: np.ndarray) -> np.ndarray:
    if len(keys) < 2:
        return keys
    keep = np.empty(len(keys), bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


@functools.lru_cache(maxsize=4096)
def query_trigrams(query: str) -> tuple[bytes, np.ndarray]:
    """The folded query bytes and their distinct trigram ids (empty below three bytes);
    cached, so the arrays are read-only."""
    folded = fold_fast(query).encode("utf-8", "surrogatepass")
    tris = sorted_unique(trigram_ids(folded))
    tris.flags.writeable = False
    return folded, tris


def literal_trigrams(literal: str) -> np.ndarray:
    """Trigrams present in the folded text wherever ``literal`` occurs, matched with or without
    case: those of its ASCII runs only (a non-ASCII character may fold differently)."""
    runs, current = [], []
    for ch in literal:
        if ch.isascii():
            current.append(ch)
        elif current:
            runs.append("".join(current))
            current = []
    runs.append("".join(current))
    found = [trigram_ids(fold_fast(r).encode("ascii")) for r in runs if len(r) >= 3]
    return sorted_unique(np.concatenate(found)) if found else np.zeros(0, np.uint32)


def prefix_range(folded: bytes) -> tuple[int, int]:
    """Trigram ids ``[lo, hi]`` that start with a one- or two-byte ``folded`` query."""
    if not 1 <= len(folded) <= 2:
        raise ValueError("prefix_range takes one or two bytes")
    lo = int.from_bytes(folded.ljust(3, b"\x00"), "big")
    hi = int.from_bytes(folded.ljust(3, b"\xff"), "big")
    return lo, hi
