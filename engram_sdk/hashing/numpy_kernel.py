"""The address function in numpy (the reference every other path is tested against)."""

from __future__ import annotations

import numpy as np

DEAD_ID = -1


def with_context(
    ids: np.ndarray, prefix: np.ndarray | None, context: int, pad_id: int
) -> np.ndarray:
    """``ids`` (B, T) with ``context`` columns in front: the prefix's last ids, else pad."""
    batch = ids.shape[0]
    front = np.full((batch, context), pad_id, dtype=np.int64)
    if prefix is not None and context:
        tail = np.asarray(prefix, dtype=np.int64)[:, -context:]
        if tail.shape[1]:
            front[:, context - tail.shape[1] :] = tail
    return np.concatenate([front, ids], axis=1)


def ngram_mixes(
    padded: np.ndarray, multipliers: np.ndarray, max_n: int, dead_pad: int | None = None
) -> list[np.ndarray]:
    """Pre-modulus mix of every order 2..max_n, each (B, T); ``padded`` has max_n-1 front columns.

    mix_n[t] = ids[t]*m[0] XOR ids[t-1]*m[1] XOR ... XOR ids[t-n+1]*m[n-1]

    With ``dead_pad`` set, an id equal to DEAD_ID (-1) and every id behind it count as
    ``dead_pad`` (the look-back stops at a DEAD token; a DEAD position hashes pads only).
    """
    context = max_n - 1
    length = padded.shape[1] - context
    current = padded[:, context:]
    blocked = None if dead_pad is None else current == DEAD_ID
    if blocked is not None:
        current = np.where(blocked, dead_pad, current)
    mix = current * multipliers[0]
    mixes = []
    for k in range(1, max_n):
        shifted = padded[:, context - k : context - k + length]
        if blocked is not None:
            blocked = blocked | (shifted == DEAD_ID)
            shifted = np.where(blocked, dead_pad, shifted)
        mix = np.bitwise_xor(mix, shifted * multipliers[k])
        mixes.append(mix)
    return mixes


def addresses(
    ids: np.ndarray,
    multipliers: np.ndarray,
    primes_per_order: list[np.ndarray],
    pad_id: int,
    prefix: np.ndarray | None = None,
    block_dead: bool = False,
) -> np.ndarray:
    """Addresses (B, T, heads_total) int64, heads ordered by N-gram order then head."""
    ids = np.asarray(ids, dtype=np.int64)
    max_n = len(multipliers)
    padded = with_context(ids, prefix, max_n - 1, pad_id)
    mixes = ngram_mixes(padded, multipliers, max_n, pad_id if block_dead else None)
    out = np.empty((*ids.shape, sum(len(p) for p in primes_per_order)), dtype=np.int64)
    head = 0
    for mix, primes in zip(mixes, primes_per_order, strict=True):
        for prime in primes.tolist():  # a scalar divisor takes numpy's fast path
            np.remainder(mix, prime, out=out[..., head])
            head += 1
    return out
