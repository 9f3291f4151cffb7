"""A fast, exact token counter for GGUF models with a byte-level BPE vocabulary.

llama.cpp tokenizes on one thread at well under 1 MB/s here, so fitting a 1M-token prompt
(about 5 MB of text, counted several times) took minutes. The GGUF file holds the whole
tokenizer (vocabulary, merges, pre-tokenizer name): rebuilt with Hugging Face
``tokenizers`` (Rust, many threads) it gives the same ids at a fraction of the cost. Only
vocabularies whose pre-tokenizer is known here are rebuilt (:data:`PRE_TOKENIZERS`);
:func:`gguf_counter` returns ``None`` for the others, and callers keep llama.cpp's count.
The equality with llama.cpp is checked in ``tests/evals/test_gguf_counter.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engram_sdk.evals.length import PARALLEL_CHARS, split_for_counting

# GGUF ``tokenizer.ggml.pre`` → the Hugging Face pre-tokenizer of that vocabulary
PRE_TOKENIZERS = {"smollm": "digits+bytelevel", "gpt-2": "bytelevel"}
CONTROL = 3  # llama.cpp's token type of special tokens


def _field_text(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def _field_list(reader: Any, key: str) -> list[Any]:
    field = reader.fields.get(key)
    if field is None:
        return []
    return [field.parts[i] for i in field.data]


def _build(path: Path) -> tuple[Any, str] | None:
    try:
        from gguf import GGUFReader
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    except ImportError:
        return None
    reader = GGUFReader(str(path))
    pre = _field_text(reader, "tokenizer.ggml.pre")
    if _field_text(reader, "tokenizer.ggml.model") != "gpt2" or pre not in PRE_TOKENIZERS:
        return None
    tokens = [bytes(p).decode("utf-8") for p in _field_list(reader, "tokenizer.ggml.tokens")]
    merges = [bytes(p).decode("utf-8") for p in _field_list(reader, "tokenizer.ggml.merges")]
    kinds = [int(p[0]) for p in _field_list(reader, "tokenizer.ggml.token_type")]
    bpe = models.BPE(
        {t: i for i, t in enumerate(tokens)},
        [tuple(m.split(" ", 1)) for m in merges],
        ignore_merges=False,
    )
    tok = Tokenizer(bpe)
    steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if PRE_TOKENIZERS[pre].startswith("digits"):
        steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, k in zip(tokens, kinds, strict=False) if k == CONTROL]
    tok.add_special_tokens(specials)
    return tok, pre


class GGUFCounter:
    """Counts tokens as llama.cpp does for this GGUF (special tokens parsed), on threads."""

    def __init__(self, tokenizer: Any, name: str, threads: int = 0) -> None:
        self._tok = tokenizer
        self.name = f"gguf:{name}"
        self.threads = threads or min(8, os.cpu_count() or 1)

    def __getstate__(self) -> dict[str, Any]:  # pool workers get the tokenizer as JSON
        return {"json": self._tok.to_str(), "name": self.name, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_str(state["json"])
        self.name, self.threads = state["name"], state["threads"]

    def count(self, text: str) -> int:
        if len(text) < PARALLEL_CHARS or self.threads < 2:
            return len(self._tok.encode(text, add_special_tokens=False).ids)
        return sum(self.count_batch(split_for_counting(text, self.threads * 4)))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]


_BUILT: dict[str, GGUFCounter | None] = {}


def gguf_counter(path: str | Path) -> GGUFCounter | None:
    """The fast counter of the GGUF file at ``path`` (built once per process), or ``None``
    when its tokenizer is not a byte-level BPE this module knows how to rebuild."""
    key = str(Path(path).resolve())
    if key not in _BUILT:
        built = _build(Path(key))
        _BUILT[key] = GGUFCounter(built[0], Path(key).name) if built else None
    return _BUILT[key]
