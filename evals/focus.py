"""How recalled passages are handed to the reader: as recalled, ranked, or focused.

Recall hands the reader whole passages; in a haystack of look-alike lines (RULER's
multikey_2/3: every line is a needle) a small reader then copies the wrong one, most often
the line nearest the question. Each line (or sentence) of the recalled text is scored by the
distinct query terms it holds, and the context is arranged by :data:`ContextMode`:

* ``passages``: the passages as recalled (best first), source headers included;
* ``ranked``: every line kept, ordered by score (stable), so the best matches sit last,
  nearest the question;
* ``focus``: only the lines with the most query terms, in their order, so the reader sees
  the matching lines and nothing that merely looks like them.

The query is the one the task states in its question (RULER's ``query``: the key or keys of
a niah task), so nothing here knows the answer.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from engram_sdk.errors import InputError
from engram_sdk.llm.terms import TERM as _TERM
from engram_sdk.llm.terms import query_terms

ContextMode = Literal["passages", "ranked", "focus"]
CONTEXT_MODES: tuple[str, ...] = get_args(ContextMode)

_UNIT = re.compile(r"[^\n]*?(?:[.!?](?=\s)|\n|$)")
_SOURCE_HEADER = re.compile(r"^\[[^\]\n]+:\d+-\d+\]$")
_LIST = re.compile(r",\s*(?:and\s+)?|\s+and\s+")


def sub_queries(query: str) -> list[str]:
    """The items of a list query (``"a, b, c, and d"``: RULER's multiquery asks for several
    keys at once), recalled one by one so that each gets its share of the budget; any other
    query (an item holding a space, a question) stays whole."""
    items = [q.strip() for q in _LIST.split(query)]
    if len(items) > 1 and all(q and not any(c.isspace() for c in q) for q in items):
        return items
    return [query]


def _units(text: str) -> list[str]:
    return [u.strip() for u in _UNIT.findall(text) if u.strip()]


def _scored(text: str, query: str) -> tuple[list[str], list[int]]:
    terms = query_terms(query)
    units = [u for u in _units(text) if not _SOURCE_HEADER.match(u)]
    return units, [len(terms & {t.lower() for t in _TERM.findall(u)}) for u in units]


def focus(text: str, query: str) -> str:
    """The lines/sentences of ``text`` with the most distinct query terms (ties all kept, in
    order); ``text`` unchanged when no unit holds any query term."""
    units, scores = _scored(text, query)
    best = max(scores, default=0)
    if best == 0:
        return text
    return "\n".join(u for u, s in zip(units, scores, strict=True) if s == best)


def ranked(text: str, query: str) -> str:
    """Every line/sentence of ``text``, fewest query terms first (ties in their order), so the
    best matches end the context; ``text`` unchanged when no unit holds any query term."""
    units, scores = _scored(text, query)
    if max(scores, default=0) == 0:
        return text
    order = sorted(range(len(units)), key=lambda i: scores[i])
    return "\n".join(units[i] for i in order)


def arrange(text: str, query: str, mode: ContextMode) -> str:
    """The recalled ``text`` as the reader gets it under ``mode`` (see the module doc)."""
    if mode == "passages":
        return text
    if mode == "ranked":
        return ranked(text, query)
    if mode == "focus":
        return focus(text, query)
    raise InputError(f"context mode {mode!r}: expected one of {', '.join(CONTEXT_MODES)}")
