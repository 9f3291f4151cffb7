"""Canonical token ids: the Engram paper's "compressed tokenizer".

Every token id maps to a dense id of its normalised text (NFKC, NFD, accents stripped,
lowercased, whitespace runs folded to one space and stripped; a whitespace-only token
keeps one space). As deepseek-ai/Engram's compressed tokenizer, a token whose text
decoded with replacement contains U+FFFD (bytes that are not UTF-8 on their own, and the
few tokens holding a literal U+FFFD) is keyed by its byte-level BPE spelling. Canonical ids are numbered in order of first appearance, so the table is
a pure function of the vocabulary.

The table is built once per encoding and cached on disk, keyed by encoding name, a
fingerprint of its vocabulary and :data:`FORMAT_VERSION`; builders racing each other each
write a private temporary file and publish it with an atomic rename.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash

from engram_sdk.paths import cache_dir

if TYPE_CHECKING:
    import tiktoken

FORMAT_VERSION = 2  # 2: literal U+FFFD tokens keyed by their byte-level spelling
_WS_RUN = re.compile(r"[ \t\r\n]+")


def normalize_token_text(text: str) -> str:
    """The normalised form of one token's text (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    text = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    text = _WS_RUN.sub(" ", text.lower())
    if text == " ":
        return " "
    return text.strip()


def _byte_level_alphabet() -> list[str]:
    """GPT-2's byte → printable character map (how byte-level BPE tokens are spelled)."""
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


_BYTE_LEVEL = _byte_level_alphabet()


def canonical_key(token_bytes: bytes) -> str:
    """The key a token is grouped under: normalised text, or its byte-level spelling.

    As the reference, a spelling may equal another token's text (byte 0x8F is spelled
    "ı"), and such tokens share an id.
    """
    text = token_bytes.decode("utf-8", errors="replace")
    if "\ufffd" in text:
        return "".join(_BYTE_LEVEL[b] for b in token_bytes)
    norm = normalize_token_text(text)
    return norm if norm else text


def vocabulary_fingerprint(enc: tiktoken.Encoding) -> str:
    """xxh3-128 over every token's bytes in id order plus the special tokens."""
    h = xxhash.xxh3_128()
    for tid in range(enc.n_vocab):
        try:
            b = enc.decode_single_token_bytes(tid)
        except KeyError:
            b = b"\x00<gap>"
        h.update(len(b).to_bytes(4, "little"))
        h.update(b)
    return h.hexdigest()


def build_table(enc: tiktoken.Encoding) -> np.ndarray:
    """Canonical id of every token id of ``enc``, as int32 (ids with no token keep their own)."""
    key_to_id: dict[Any, int] = {}
    table = np.empty(enc.n_vocab, dtype=np.int32)
    for tid in range(enc.n_vocab):
        try:
            key: Any = canonical_key(enc.decode_single_token_bytes(tid))
        except KeyError:
            key = ("unused-id", tid)
        table[tid] = key_to_id.setdefault(key, len(key_to_id))
    return table


@dataclass(frozen=True)
class CanonicalMap:
    """Token id → canonical id for one encoding."""

    encoding_name: str
    table: np.ndarray  # (n_vocab,) int32
    size: int  # number of distinct canonical ids

    @property
    def reduction(self) -> float:
        """Fraction of the vocabulary removed by canonicalisation."""
        return 1.0 - self.size / len(self.table)

    def apply(self, ids: np.ndarray) -> np.ndarray:
        """Canonical ids of ``ids`` (same shape, int64); negative ids pass through."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and ids.max() >= len(self.table):
            raise ValueError(
                f"token id {int(ids.max())} is outside the {self.encoding_name} vocabulary "
                f"of {len(self.table)} ids"
            )
        out = ids.copy()
        valid = ids >= 0
        out[valid] = self.table[ids[valid]]
        return out

    def apply_torch(self, ids: Any) -> Any:
        """Canonical ids of a torch tensor of ids, on the tensor's device."""
        import torch

        table = torch.as_tensor(self.table, dtype=torch.int64, device=ids.device)
        return torch.where(ids >= 0, table[ids.clamp_min(0)], ids)

    @classmethod
    def for_encoding(
        cls, enc: tiktoken.Encoding, name: str, folder: Path | None = None
    ) -> CanonicalMap:
        """Load the cached table for ``enc``, building and caching it if needed."""
        folder = Path(folder) if folder is not None else cache_dir() / "canonical"
        fp = vocabulary_fingerprint(enc)
        path = folder / f"{name}-{fp[:16]}-v{FORMAT_VERSION}.npy"
        table = _read_cached(path, enc.n_vocab)
        if table is None:
            table = build_table(enc)
            _write_atomically(path, table)
        return cls(encoding_name=name, table=table, size=int(table.max()) + 1)


def _read_cached(path: Path, n_vocab: int) -> np.ndarray | None:
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if table.dtype != np.int32 or table.shape != (n_vocab,):
        return None
    return table


def _write_atomically(path: Path, table: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, table, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # a read-only cache folder only costs a rebuild next time
