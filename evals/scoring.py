"""RULER's metrics: ``string_match_all`` and ``string_match_part``, and prediction clean-up.

Both take predictions (strings) and references (a list of strings per prediction) and
return a percentage rounded to two decimals, as RULER's evaluator reports them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from engram_sdk.errors import InputError

_CONTROL = re.compile(r"[\x00-\x1f]")

Metric = Callable[[Sequence[str], Sequence[Sequence[str]]], float]


def postprocess(prediction: str) -> str:
    """Strip a prediction and turn control characters into newlines (RULER's clean-up)."""
    return _CONTROL.sub("\n", prediction.strip()).strip()


def _check(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
    if len(preds) != len(refs):
        raise InputError(f"{len(preds)} predictions but {len(refs)} reference lists")
    if not preds:
        raise InputError("no predictions to score")
    for ref in refs:
        if isinstance(ref, str) or not ref:
            raise InputError(f"each reference must be a non-empty list of strings, got {ref!r}")


def sample_match_all(pred: str, ref: Sequence[str]) -> float:
    """Fraction of the references contained in ``pred`` (case-insensitive), in [0, 1]."""
    low = pred.lower()
    return sum(r.lower() in low for r in ref) / len(ref)


def sample_match_part(pred: str, ref: Sequence[str]) -> float:
    """1.0 when any reference is contained in ``pred`` (case-insensitive), else 0.0."""
    low = pred.lower()
    return 1.0 if any(r.lower() in low for r in ref) else 0.0


def string_match_all(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Mean over samples of the fraction of references found, ×100, rounded to 2 decimals."""
    _check(preds, refs)
    return round(sum(map(sample_match_all, preds, refs)) / len(preds) * 100, 2)


def string_match_part(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Mean over samples of "the best reference is found", ×100, rounded to 2 decimals."""
    _check(preds, refs)
    return round(sum(map(sample_match_part, preds, refs)) / len(preds) * 100, 2)


METRICS: dict[str, Metric] = {
    "string_match_all": string_match_all,
    "string_match_part": string_match_part,
}
SAMPLE_METRICS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "string_match_all": sample_match_all,
    "string_match_part": sample_match_part,
}


def get_metric(name: str) -> Metric:
    """The metric called ``name``; :class:`InputError` lists the known ones otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise InputError(f"unknown metric {name!r}; expected one of {sorted(METRICS)}") from None
