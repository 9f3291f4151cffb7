"""Primality and the per-head prime table sizes of Engram addressing."""

from __future__ import annotations

from collections.abc import Iterable

_WITNESSES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)  # deterministic below 3.3e24


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin for every n below 3.3e24 (all int64 included)."""
    if n < 2:
        return False
    for p in _WITNESSES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _WITNESSES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def next_prime(after: int, taken: set[int]) -> int:
    """Smallest prime strictly greater than ``after`` that is not in ``taken``."""
    candidate = after + 1
    while not is_prime(candidate) or candidate in taken:
        candidate += 1
    return candidate


def head_primes(
    layer_ids: Iterable[int], table_sizes: list[int], n_heads: int
) -> dict[int, list[list[int]]]:
    """Prime modulus of every head: ``{layer: [[prime per head] per N-gram order]}``.

    For each layer in order, each order's heads search upward from that order's table
    size, each head from the previous head's prime; no prime is used twice anywhere.
    """
    taken: set[int] = set()
    result: dict[int, list[list[int]]] = {}
    for layer in layer_ids:
        per_order: list[list[int]] = []
        for size in table_sizes:
            start = size - 1
            primes: list[int] = []
            for _ in range(n_heads):
                start = next_prime(start, taken)
                taken.add(start)
                primes.append(start)
            per_order.append(primes)
        result[layer] = per_order
    return result
