"""gkamradt's grid axes: context lengths and needle depths, linearly or sigmoid spaced.

``linear`` is ``np.round(np.linspace(lo, hi, n)).astype(int)``; ``sigmoid`` maps each point
of ``np.linspace(lo, hi, n)`` through gkamradt's logistic (L=100, x0=50, k=0.1, rounded to 3
decimals; 0 and 100 stay as they are), which crowds depths near the ends of the document.
"""

from __future__ import annotations

import math

import numpy as np

from engram_sdk.errors import InputError

SPACINGS = ("linear", "sigmoid")


def _logistic(x: float, top: float = 100.0, mid: float = 50.0, k: float = 0.1) -> float:
    if x in (0, 100):
        return float(x)
    return float(np.round(top / (1 + math.exp(k * (x - mid))), 3))


def spaced_depths(
    n: int, *, spacing: str = "linear", lo: float = 0, hi: float = 100
) -> list[float]:
    """``n`` needle depths in percent between ``lo`` and ``hi``, as gkamradt spaces them."""
    if n < 1:
        raise InputError(f"depth intervals must be >= 1, got {n}")
    if not 0 <= lo <= hi <= 100:
        raise InputError(f"depths must satisfy 0 <= min <= max <= 100, got {lo} and {hi}")
    points = np.linspace(lo, hi, num=n, endpoint=True)
    if spacing == "linear":
        return [float(v) for v in np.round(points).astype(int)]
    if spacing == "sigmoid":
        return [_logistic(float(x)) for x in points]
    raise InputError(f"depth spacing {spacing!r}: expected one of {', '.join(SPACINGS)}")


def spaced_lengths(lo: int, hi: int, n: int) -> list[int]:
    """``n`` context lengths from ``lo`` to ``hi`` tokens (gkamradt's linspace, rounded)."""
    if n < 1 or lo < 1 or hi < lo:
        raise InputError(f"lengths: need 1 <= min <= max and intervals >= 1, got {lo}, {hi}, {n}")
    return [int(v) for v in np.round(np.linspace(lo, hi, num=n, endpoint=True)).astype(int)]
