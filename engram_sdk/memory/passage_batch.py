"""Passages encoded for the store before they have ids: spans, compressed texts, trigrams.

Everything costly about storing a passage (compressing its text, folding it, extracting and
sorting its trigrams) depends only on the passage, not on the id it will get. A
:class:`PassageBatch` holds that work for passages numbered 0..n-1, so it can be done in a
worker process (only compact arrays and bytes travel back) and the writer just adds the
first id: its key runs, renumbered, are the index postings
(:meth:`PassageBatch.key_runs`), ``texts`` the UTF-8 texts (stored in fragments:
:mod:`engram_sdk.memory.text_store`). Batches are joined without touching their keys: the
index merges the runs a segment at a time (:func:`engram_sdk.memory.purge.segments_of_runs`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from engram_sdk.memory.chunking import Chunk
from engram_sdk.memory.fold import index_bytes
from engram_sdk.memory.purge import KeyRun
from engram_sdk.memory.trigrams import passage_postings

GROUP_CHARS = 1 << 18  # text per thread task when encoding on every core


@dataclass(frozen=True)
class PassageBatch:
    """Passages 0..n-1: ``spans`` (n, 4) int64 rows of line_start, line_end, byte_start,
    byte_end; ``texts`` the UTF-8 texts; ``runs`` the postings of consecutive groups of
    passages, ``sizes[i]`` passages each (in order, summing to n): sorted unique
    ``trigram << 32 | passage number in the group`` keys (uint64)."""

    spans: np.ndarray
    texts: list[bytes]
    runs: list[np.ndarray]
    sizes: list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def key_runs(self, first: int) -> list[KeyRun]:
        """The runs for passage ids ``first .. first + n - 1``."""
        out = []
        for keys, size in zip(self.runs, self.sizes, strict=True):
            out.append(KeyRun(keys, first, size))
            first += size
        return out


def encode_chunks(chunks: Sequence[Chunk], *, threads: bool = True) -> PassageBatch:
    """The batch of ``chunks``; ``threads``: groups of about :data:`GROUP_CHARS` characters
    on every core (numpy releases the GIL); off in worker processes, which already
    use one core each."""
    cores = os.cpu_count() or 1
    if not threads or cores == 1 or sum(len(c.text) for c in chunks) < 2 * GROUP_CHARS:
        return _encode(chunks)
    groups: list[list[Chunk]] = [[]]
    size = 0
    for c in chunks:
        if size >= GROUP_CHARS:
            groups.append([])
            size = 0
        groups[-1].append(c)
        size += len(c.text)
    with ThreadPoolExecutor(min(cores, len(groups))) as pool:
        return concat(list(pool.map(_encode, groups)))


def _encode(chunks: Sequence[Chunk]) -> PassageBatch:
    spans = np.array(
        [(c.line_start, c.line_end, c.byte_start, c.byte_end) for c in chunks], np.int64
    ).reshape(-1, 4)
    texts = [c.text.encode("utf-8", "surrogatepass") for c in chunks]
    local = np.arange(len(chunks), dtype=np.uint32)
    index = [t if t.isascii() else index_bytes(c.text) for c, t in zip(chunks, texts, strict=True)]
    keys = passage_postings(index, local, threads=False)
    return PassageBatch(spans, texts, [keys], [len(chunks)])


def concat(batches: Sequence[PassageBatch]) -> PassageBatch:
    """One batch of ``batches`` in order (passages renumbered after those before)."""
    if len(batches) == 1:
        return batches[0]
    spans = np.concatenate([b.spans for b in batches]) if batches else np.zeros((0, 4), np.int64)
    texts = [text for b in batches for text in b.texts]
    return PassageBatch(
        spans, texts, [r for b in batches for r in b.runs], [n for b in batches for n in b.sizes]
    )
