"""Regular-expression search: a trigram prefilter from the pattern, a linear-time matcher.

The prefilter is a boolean query over literal strings every match must contain, read from
the pattern's parse tree (as Russ Cox's trigram regex index, zoekt and ripgrep do):
a concatenation requires each of its literal runs, an alternation requires one of its
branches, a repetition with a minimum of one requires its body, anything else requires
nothing. Matching uses RE2 (``google-re2``), whose time is linear in the text, so no
pattern can hang a search; without it, Python's ``re`` is used and documented as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from engram_sdk.errors import InputError
from engram_sdk.memory.trigrams import literal_trigrams

try:  # the parser behind ``re``: stable across 3.11-3.13, only read here
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_parse  # type: ignore[no-redef]

try:
    import re2

    HAVE_RE2 = True
except ImportError:  # pragma: no cover - exercised only without the optional dependency
    re2 = None
    HAVE_RE2 = False

_CONSTS = sre_parse  # LITERAL, SUBPATTERN, ... live in the parser module's namespace


@dataclass(frozen=True)
class Requirement:
    """Every match holds all of ``all_of`` (trigram sets) and, for each entry of
    ``any_of``, at least one of its alternatives."""

    all_of: tuple[np.ndarray, ...] = ()
    any_of: tuple[tuple[Requirement, ...], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.all_of and not self.any_of


def compile_pattern(pattern: str, *, exact_case: bool) -> Any:
    """The matcher: RE2 when installed (linear time), else ``re``; case-insensitive unless
    ``exact_case``; ``^`` and ``$`` match at line ends. Syntax errors become
    :class:`InputError` naming the pattern."""
    if not isinstance(pattern, str) or not pattern:
        raise InputError(f"regex must be a non-empty string, got {pattern!r}")
    try:
        if HAVE_RE2:
            options = re2.Options()
            options.case_sensitive = exact_case
            options.never_capture = True
            return re2.compile("(?m)" + pattern, options)  # ^ and $ at line ends, as rg
        return re.compile(pattern, re.MULTILINE | (0 if exact_case else re.IGNORECASE))
    except Exception as e:  # re2.error and re.error share no base class
        raise InputError(f"regex {pattern!r} is not valid: {e}") from None


def requirement(pattern: str) -> Requirement:
    """Literal trigrams every match of ``pattern`` must contain (empty: scan everything)."""
    try:
        tree = sre_parse.parse(pattern)
    except Exception:  # RE2-only syntax: no prefilter, verification still decides
        return Requirement()
    return _seq(list(tree))


def _seq(items: list[tuple[Any, Any]]) -> Requirement:
    runs: list[str] = []
    current: list[str] = []
    nested: list[Requirement] = []

    def cut() -> None:
        if current:
            runs.append("".join(current))
            current.clear()

    for op, av in items:
        if op is _CONSTS.LITERAL:
            current.append(chr(av))
            continue
        cut()
        if op is _CONSTS.SUBPATTERN:
            nested.append(_seq(list(av[-1])))
        elif op is _CONSTS.BRANCH:
            alts = tuple(_seq(list(alt)) for alt in av[1])
            if all(not a.empty for a in alts):
                nested.append(Requirement(any_of=(alts,)))
        elif op in (_CONSTS.MAX_REPEAT, _CONSTS.MIN_REPEAT, _CONSTS.POSSESSIVE_REPEAT):
            if av[0] >= 1:
                nested.append(_seq(list(av[2])))
        elif op is _CONSTS.ATOMIC_GROUP:
            nested.append(_seq(list(av)))
    cut()
    sets = [t for t in (literal_trigrams(r) for r in runs) if len(t)]
    all_of = tuple(sets) + tuple(t for n in nested for t in n.all_of)
    any_of = tuple(a for n in nested for a in n.any_of)
    return Requirement(all_of, any_of)
