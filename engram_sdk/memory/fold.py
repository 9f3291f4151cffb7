"""Case- and accent-folding of text, the character-level twin of canonical token ids.

The index is built over folded UTF-8 bytes. ASCII text is folded byte-wise in numpy
(:data:`BYTE_FOLD`, :data:`BYTE_IS_SPACE`), other text through :func:`fold`; both give the
same bytes for ASCII, so a query folded with :func:`fold_fast` finds its trigrams in the index.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np

_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")  # combining marks are never ASCII
# the ASCII characters ``\s`` matches in a str pattern: \t \n \v \f \r, \x1c-\x1f and space
ASCII_SPACE = bytes([9, 10, 11, 12, 13, 28, 29, 30, 31, 32])
BYTE_IS_SPACE = np.zeros(256, bool)
BYTE_IS_SPACE[list(ASCII_SPACE)] = True
BYTE_FOLD = np.arange(256, dtype=np.uint8)
BYTE_FOLD[ord("A") : ord("Z") + 1] += 32
BYTE_FOLD[list(ASCII_SPACE)] = ord(" ")
FOLD_TABLE = BYTE_FOLD.tobytes()  # the same, for ``bytes.translate`` (a C pass, no gather)


@functools.cache
def _drop_combining() -> dict[int, None]:
    """``str.translate`` table deleting every combining mark (all lie below U+20000)."""
    return {c: None for c in range(0x20000) if unicodedata.combining(chr(c))}


def fold(text: str) -> str:
    """NFKC, strip accents, lowercase, whitespace runs to one space (as canonical ids do per token)."""
    text = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    if not text.isascii():  # translate only the non-ASCII runs: a dict lookup per character
        # of mostly-ASCII text (source code) cost ~50 ns each
        drop = _drop_combining()
        text = _NON_ASCII_RUN.sub(lambda m: m.group().translate(drop), text)
    return collapse_spaces(text.lower())


def collapse_spaces(text: str) -> str:
    """Every run of whitespace (``\\s`` of a str pattern: what ``str.split`` splits at) to one
    space, as ``re.sub(r"\\s+", " ", text)`` does, five times faster."""
    words = text.split()
    if not words:
        return " " if text else ""
    out = " ".join(words)
    if text[0].isspace():
        out = " " + out
    if text[-1].isspace():
        out += " "
    return out


def fold_fast(text: str) -> str:
    """:func:`fold` with a shortcut for ASCII text."""
    if text.isascii():
        return collapse_spaces(text.lower())
    return fold(text)


@functools.lru_cache(maxsize=4096)
def fold_query(query: str) -> str:
    """:func:`fold_fast` of a query, remembered: a search folds its query in several places."""
    return fold_fast(query)


def index_bytes(text: str) -> bytes:
    """The bytes the index sees for a passage before byte folding: ASCII text as is (folded in
    bulk: :data:`FOLD_TABLE`, :func:`fold_spaces`), anything else folded here."""
    if text.isascii():
        return text.encode("ascii")
    return fold(text).encode("utf-8", "surrogatepass")


def fold_spaces(buf: np.ndarray) -> np.ndarray:
    """The rest of a byte-wise :func:`fold` of ASCII bytes already translated with
    :data:`FOLD_TABLE` (lowercase, every whitespace byte a space): the mask of the bytes
    to keep, one space of each run."""
    space = buf == ord(" ")
    keep = np.empty(len(buf), bool)
    keep[:1] = True
    np.logical_not(space[1:] & space[:-1], out=keep[1:])
    return keep
