"""Query-focused extraction: keep the lines of a recalled context that match the query best.

Recall hands the reader whole passages; in a haystack of look-alike lines (RULER's
multikey_2/3: every line is a needle) a small reader then copies the wrong one. Focusing
keeps only the lines (or sentences) holding the most distinct query terms, in their order,
so the reader sees the matching lines and nothing that merely looks like them.
"""

from __future__ import annotations

import re

_TERM = re.compile(r"[A-Za-z0-9]+")
_UNIT = re.compile(r"[^\n]*?(?:[.!?](?=\s)|\n|$)")
STOPWORDS = frozenset(
    {"the", "and", "for", "are", "was", "what", "which", "who", "whom", "with", "from"}
    | {"that", "this", "there", "their", "into", "about", "does", "did", "have", "has"}
    | {"had", "you", "your", "all", "any"}
)


def query_terms(query: str) -> set[str]:
    """Lower-cased words of three or more characters, without stopwords."""
    return {t for t in map(str.lower, _TERM.findall(query)) if len(t) >= 3} - STOPWORDS


def _units(text: str) -> list[str]:
    return [u for u in _UNIT.findall(text) if u.strip()]


def focus(text: str, query: str) -> str:
    """The lines/sentences of ``text`` with the most distinct query terms (ties all kept, in
    order); ``text`` unchanged when no unit holds any query term."""
    terms = query_terms(query)
    if not terms:
        return text
    units = _units(text)
    scores = [len(terms & {t.lower() for t in _TERM.findall(u)}) for u in units]
    best = max(scores, default=0)
    if best == 0:
        return text
    return "\n".join(u.strip() for u, s in zip(units, scores, strict=True) if s == best)
