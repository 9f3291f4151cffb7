"""Real text for the table-speed benchmarks: token ids and Engram row addresses, offline.

The text is Python's own standard library source (present wherever Python is), read in
sorted path order, tokenized with the project's tokenizer (``cl100k_base``) and hashed with
the project's N-gram hasher, exactly as a model of the given config addresses its tables.
Uniform random ids would hide the Zipf-like skew of real N-grams that caches and frequency
layouts exploit.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np


def stdlib_files() -> list[Path]:
    """The ``.py`` files of the running Python's standard library, sorted (tests and site-packages excluded)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests", "idlelib", "lib2to3"}
    return sorted(p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts))


def real_text_ids(tokens: int, *, skip_tokens: int = 0) -> np.ndarray:
    """``tokens`` token ids (int64) of real text, after skipping the first ``skip_tokens``.

    Files are read in order until enough ids are collected; each file ends with EOT. Two
    calls with disjoint ``skip_tokens`` ranges give disjoint text (a train/test split).
    """
    from engram_sdk.tokenizer import get_tokenizer

    tok = get_tokenizer()
    need = tokens + skip_tokens
    parts: list[np.ndarray] = []
    have = 0
    files = stdlib_files()
    for start in range(0, len(files), 64):
        texts = [
            f.read_bytes().decode("utf-8", errors="replace") for f in files[start : start + 64]
        ]
        for ids in tok.encode_batch(texts):
            parts.append(np.asarray([*ids, tok.eot_id], dtype=np.int64))
            have += len(parts[-1])
        if have >= need:
            break
    if have < need:
        raise ValueError(f"the standard library holds {have} tokens, fewer than {need} asked for")
    return np.concatenate(parts)[skip_tokens:need]


def table_addresses(
    ids: np.ndarray,
    *,
    layer_id: int = 1,
    table_size: int = 1_000_003,
    heads_per_ngram: int = 8,
    max_ngram: int = 3,
) -> tuple[np.ndarray, int]:
    """Flat Engram addresses (T, heads) of ``ids`` for one layer, and that layer's table rows.

    Same canonicalization and hashing as :class:`engram_sdk.model.Transformer` with
    ``engram_table_size = [table_size] * (max_ngram - 1)``.
    """
    from engram_sdk.hashing import NgramConfig, NgramHasher
    from engram_sdk.tokenizer import get_tokenizer

    tok = get_tokenizer()
    cmap = tok.canonical
    hasher = NgramHasher(
        NgramConfig(
            vocab_size=cmap.size,
            max_ngram_size=max_ngram,
            n_head_per_ngram=heads_per_ngram,
            engram_vocab_size=[table_size] * (max_ngram - 1),
            layer_ids=[layer_id],
            pad_id=int(cmap.table[tok.eot_id]),
        )
    )
    canon = cmap.table[ids].astype(np.int64)[None, :]
    flat = hasher.hash(canon, layer_id, flat=True)[0]
    return flat, hasher.table_rows(layer_id)
