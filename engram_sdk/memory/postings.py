"""Posting lists in bulk: delta + LEB128 varint coding, vectorised with numpy.

A segment's postings are one byte string: for every trigram in its (sorted) dictionary, the
passage ids holding it, ascending, each stored as the varint of its difference to the
previous id of the same list (the first one as is). Encoding and decoding run over all
lists at once; nothing loops in Python per posting or per trigram.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np


def varint_widths(values: np.ndarray) -> np.ndarray:
    """LEB128 bytes each uint32 value takes (1-5)."""
    width = (values >= 1 << 7).astype(np.uint8)
    for bits in (14, 21, 28):
        width += values >= 1 << bits
    return width + 1


ENCODE_CHUNK = 1 << 20  # values coded at a time: temporaries stay a few megabytes


def varint_encode(values: np.ndarray, widths: np.ndarray | None = None) -> bytes:
    """LEB128 bytes of ``values`` (uint32), concatenated; ``widths`` (from
    :func:`varint_widths`) may be passed when already computed. Coded
    :data:`ENCODE_CHUNK` values at a time, one pass per byte position: in bulk ingest the
    pages a new array touches cost more than the arithmetic done on it, so the only large
    arrays are the input and the output."""
    return _encode(values, widths, np.zeros(0, np.int64))[0]


def _encode(
    values: np.ndarray, widths: np.ndarray | None, last: np.ndarray
) -> tuple[bytes, np.ndarray]:
    """:func:`varint_encode`, and the byte offset where each value of the sorted indexes
    ``last`` ends (the list ends of :func:`encode_keys`, read off the running sum the coding
    needs anyway)."""
    v = values.astype(np.uint32, copy=False)
    width = varint_widths(v) if widths is None else widths
    out = np.empty(int(width.sum(dtype=np.int64)), np.uint8)
    ends = np.empty(len(last), np.int64)
    at = 0
    for lo in range(0, len(v), ENCODE_CHUNK):
        hi = lo + ENCODE_CHUNK
        a, b = np.searchsorted(last, [lo, hi])
        at = _encode_chunk(v[lo:hi], width[lo:hi], out, at, last[a:b] - lo, ends[a:b])
    return out.tobytes(), ends


def _encode_chunk(
    v: np.ndarray, width: np.ndarray, out: np.ndarray, at: int, last: np.ndarray, ends: np.ndarray
) -> int:
    """Write the varints of ``v`` into ``out`` from byte ``at``, and into ``ends`` where the
    values at ``last`` end; returns where they all end."""
    pos = width.astype(np.int64)
    np.cumsum(pos, out=pos)
    end = at + int(pos[-1])
    np.add(pos[last], at, out=ends)
    pos -= width
    pos += at  # where each value starts
    first = v.astype(np.uint8)  # the low byte
    first &= 0x7F
    first[width > 1] |= 0x80
    out[pos] = first
    sel = np.flatnonzero(width > 1)
    for j in range(1, 5):
        if not len(sel):
            break
        byte = ((v[sel] >> np.uint32(7 * j)) & 0x7F).astype(np.uint8)
        byte[width[sel] > j + 1] |= 0x80
        out[pos[sel] + j] = byte
        sel = sel[width[sel] > j + 1]
    return end


DECODE_CHUNK = 1 << 22  # bytes decoded at a time


def varint_decode(data: bytes | np.ndarray) -> np.ndarray:
    """Inverse of :func:`varint_encode` (uint32); one pass per byte position,
    :data:`DECODE_CHUNK` bytes at a time (each piece cut after a value's last byte), so a
    merge's decode needs no temporaries the size of the whole segment."""
    b = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray) else data
    if len(b) <= DECODE_CHUNK:
        return _decode_chunk(b)
    cuts = [0]
    while cuts[-1] < len(b):  # each piece ends after a value's last byte (or at the end)
        hi = min(cuts[-1] + DECODE_CHUNK, len(b))
        while hi < len(b) and b[hi - 1] >= 0x80:
            hi += 1
        cuts.append(hi)
    pieces = list(pairwise(cuts))
    sizes = [1 + int(np.count_nonzero(b[lo : hi - 1] < 0x80)) for lo, hi in pieces]
    out = np.empty(sum(sizes), np.uint32)
    at = 0
    for (lo, hi), n in zip(pieces, sizes, strict=True):
        out[at : at + n] = _decode_chunk(b[lo:hi])
        at += n
    return out


def _decode_chunk(b: np.ndarray) -> np.ndarray:
    if not len(b):
        return np.zeros(0, np.uint32)
    more = b >= 0x80
    if not more.any():  # every value fits one byte
        return b.astype(np.uint32)
    begins = np.empty(len(b), bool)
    begins[0] = True
    np.logical_not(more[:-1], out=begins[1:])
    starts = np.flatnonzero(begins)
    values = (b[starts] & 0x7F).astype(np.uint32)
    todo = np.flatnonzero(more[starts])
    for j in range(1, 5):
        if not len(todo):
            break
        at = starts[todo] + j
        values[todo] |= (b[at] & 0x7F).astype(np.uint32) << np.uint32(7 * j)
        todo = todo[more[at]]
    return values


@dataclass(frozen=True)
class Postings:
    """Sorted distinct trigrams, their document frequencies and the coded lists."""

    trigrams: np.ndarray  # uint32, sorted
    df: np.ndarray  # uint32, passages per trigram
    ends: np.ndarray  # int64, end byte of each list in ``blob``
    blob: bytes

    @property
    def starts(self) -> np.ndarray:
        """Start byte of each list."""
        return np.concatenate([[0], self.ends[:-1]]).astype(np.int64)


def encode_keys(keys: np.ndarray) -> Postings:
    """Postings of sorted unique ``trigram << 32 | pid`` keys."""
    halves = np.ascontiguousarray(keys, dtype="<u8").view("<u4").reshape(-1, 2)
    pids, tri = halves[:, 0], halves[:, 1]  # little-endian: low word first
    first = np.empty(len(tri), bool)
    if len(tri):
        first[0] = True
        np.not_equal(tri[1:], tri[:-1], out=first[1:])
    group_starts = np.flatnonzero(first)
    del first
    deltas = np.empty(len(pids), np.uint32)
    deltas[:1] = pids[:1]
    np.subtract(pids[1:], pids[:-1], out=deltas[1:])
    deltas[group_starts] = pids[group_starts]
    trigrams = tri[group_starts]
    df = np.diff(np.append(group_starts, len(tri))).astype(np.uint32)
    last = np.append(group_starts[1:], len(tri)) - 1 if len(tri) else np.zeros(0, np.int64)
    blob, ends = _encode(deltas, None, last)  # ends: each list's last value's end
    return Postings(trigrams, df, ends, blob)


def _running_sum(width: np.ndarray) -> np.ndarray:
    """int64 running sum of small widths (widening first: ``cumsum(dtype=...)`` of uint8 runs
    several times slower)."""
    return np.cumsum(width.astype(np.int64))


def decode_all(p: Postings) -> np.ndarray:
    """Every key ``trigram << 32 | pid`` of ``p`` (sorted), inverse of :func:`encode_keys`.

    Running sums restart at every list: one uint32 running sum over all deltas (it wraps,
    and so does the subtraction of the sum before each list, which gives back the exact
    pid), so the only wide array is the result."""
    pids = varint_decode(p.blob)
    np.cumsum(pids, dtype=np.uint32, out=pids)
    counts = p.df.astype(np.int64)
    if len(counts) > 1:
        before = np.zeros(len(counts), np.uint32)
        before[1:] = pids[np.cumsum(counts[:-1]) - 1]
        pids -= np.repeat(before, counts)
    keys = np.repeat(p.trigrams.astype(np.uint64) << np.uint64(32), counts)
    keys |= pids
    return keys


def _undelta(deltas: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Running sums of ``deltas`` restarted at every list of ``df`` entries."""
    total = np.cumsum(deltas)
    if len(df) == 1:
        return total
    counts = df.astype(np.int64)
    starts = np.cumsum(counts) - counts
    shifted = np.zeros(len(total) + 1, np.int64)
    shifted[1:] = total
    return total - np.repeat(shifted[starts], counts)


def decode_lists(blob: bytes | np.ndarray, df: np.ndarray) -> np.ndarray:
    """Passage ids of consecutive lists (``df`` entries each) coded in ``blob``, concatenated."""
    return _undelta(varint_decode(blob).astype(np.int64), df)
