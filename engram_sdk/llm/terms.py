"""The words of a question that say what it is about: shared by the prompt's focused lines
(:mod:`engram_sdk.llm.focused`) and the evals' context arrangement (:mod:`engram_sdk.evals.focus`),
so both score a line by the same terms."""

from __future__ import annotations

import re

TERM = re.compile(r"[A-Za-z0-9]+")
STOPWORDS = frozenset(
    {"the", "and", "for", "are", "was", "what", "which", "who", "whom", "with", "from"}
    | {"that", "this", "there", "their", "into", "about", "does", "did", "have", "has"}
    | {"had", "you", "your", "all", "any"}
)


def query_terms(query: str) -> set[str]:
    """Lower-cased words of three or more characters, without stopwords."""
    return {t for t in map(str.lower, TERM.findall(query)) if len(t) >= 3} - STOPWORDS
