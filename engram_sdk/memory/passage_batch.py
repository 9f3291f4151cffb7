"""Passages encoded for the store before they have ids: spans, compressed texts, trigrams.

Everything costly about storing a passage (compressing its text, folding it, extracting and
sorting its trigrams) depends only on the passage, not on the id it will get. A
:class:`PassageBatch` holds that work for passages numbered 0..n-1, so it can be done in a
worker process (only compact arrays and bytes travel back) and the writer just adds the
first id: ``keys + first`` are the index postings, ``bodies`` the stored texts.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engram_sdk.memory.chunking import Chunk
from engram_sdk.memory.fold import index_bytes
from engram_sdk.memory.trigrams import passage_postings


@dataclass(frozen=True)
class PassageBatch:
    """Passages 0..n-1: ``spans`` (n, 4) int64 rows of line_start, line_end, byte_start,
    byte_end; ``bodies`` the zlib-compressed UTF-8 texts; ``keys`` the sorted unique
    ``trigram << 32 | passage number`` postings (uint64)."""

    spans: np.ndarray
    bodies: list[bytes]
    keys: np.ndarray

    def __len__(self) -> int:
        return len(self.bodies)


def encode_chunks(chunks: Sequence[Chunk], *, threads: bool = True) -> PassageBatch:
    """The batch of ``chunks``; ``threads``: extract trigrams on every core (off in worker
    processes, which already use one core each)."""
    spans = np.array(
        [(c.line_start, c.line_end, c.byte_start, c.byte_end) for c in chunks], np.int64
    ).reshape(-1, 4)
    bodies = [zlib.compress(c.text.encode("utf-8", "surrogatepass"), 1) for c in chunks]
    local = np.arange(len(chunks), dtype=np.uint32)
    keys = passage_postings([index_bytes(c.text) for c in chunks], local, threads=threads)
    return PassageBatch(spans, bodies, keys)


def concat(batches: Sequence[PassageBatch]) -> PassageBatch:
    """One batch of ``batches`` in order (passages renumbered after those before)."""
    if len(batches) == 1:
        return batches[0]
    keys = np.empty(sum(len(b.keys) for b in batches), np.uint64)
    at = first = 0
    for b in batches:  # renumber in place: no temporary copy of the keys
        np.add(b.keys, np.uint64(first), out=keys[at : at + len(b.keys)])
        at, first = at + len(b.keys), first + len(b)
    keys.sort(kind="stable")  # sorted runs: a linear merge
    spans = np.concatenate([b.spans for b in batches]) if batches else np.zeros((0, 4), np.int64)
    return PassageBatch(spans, [body for b in batches for body in b.bodies], keys)
