"""Checks of the memory API's arguments: each failure is an :class:`InputError` naming the
argument, what was expected and what was given (never a raw ``TypeError``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from engram_sdk.errors import InputError


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """An int of at least ``minimum`` (bools and numeric strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_k(value: Any) -> int | str:
    """How many hits: an int >= 1 or ``"all"``."""
    if value == "all" and isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"k must be an int >= 1 or 'all', got {value!r}")
    return value


def check_match(value: Any, k: Any, regex: bool, exact_case: bool) -> str:
    """How a search matches: ``"phrase"``, or ``"words"`` (top-k, case-folded, not with a
    regex)."""
    if value not in ("phrase", "words") or not isinstance(value, str):
        raise InputError(f"match must be 'phrase' or 'words', got {value!r}")
    if value == "words" and (k == "all" or regex or exact_case):
        asked = "k='all'" if k == "all" else "regex=True" if regex else "exact_case=True"
        raise InputError(
            f"match='words' ranks the top k passages by case-folded words; {asked} needs "
            "match='phrase'"
        )
    return value


def check_bool(name: str, value: Any) -> bool:
    """A bool."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return value


def check_query(value: Any) -> str:
    """A non-blank str."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"query must be a non-empty str, got {value!r}")
    return value


def check_sources(value: Any) -> list[str] | None:
    """None, one source name (a str) or a list/tuple/set of them."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence | set | frozenset) or isinstance(value, bytes):
        raise InputError(f"sources must be a str or a list of str, got {value!r}")
    bad = [s for s in value if not isinstance(s, str)]
    if bad:
        raise InputError(f"sources must hold str only, got {bad[0]!r}")
    return list(value)


def check_metadata(value: Any) -> dict[str, Any]:
    """None or a JSON-serialisable dict with str keys (it is stored as JSON)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"metadata must be a dict with str keys, got {value!r}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise InputError(f"metadata keys must be str, got {bad[0]!r}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"metadata must be JSON-serialisable: {exc}") from None
    return value


def check_seconds(name: str, value: Any) -> float | None:
    """None or a positive, finite number of seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{name} must be a positive number of seconds, got {value!r}")
    if value <= 0:
        raise InputError(f"{name} must be > 0 seconds, got {value}")
    return float(value)
