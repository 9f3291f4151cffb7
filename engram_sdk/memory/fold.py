"""Case- and accent-folding of text, the character-level twin of canonical token ids."""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")


def fold(text: str) -> str:
    """NFKC, strip accents, lowercase, whitespace runs to one space (as canonical ids do per token)."""
    text = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _WS.sub(" ", text.lower())


def fold_fast(text: str) -> str:
    """:func:`fold` with a shortcut for ASCII text."""
    if text.isascii():
        return _WS.sub(" ", text.lower())
    return fold(text)
