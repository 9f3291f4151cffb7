"""Training corpora: text files and folders read into one array of token ids.

Folders are walked like ``engram ingest`` walks them (:mod:`engram_sdk.memory.walker`), so
the model layer (``engram_sdk.model.train.TokenStream``) only ever sees ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from engram_sdk.errors import InputError


def corpus_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every text file under ``paths``, sorted; a missing path is an :class:`InputError`."""
    from engram_sdk.memory.walker import walk

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += [f.path for f in walk(p)]
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return sorted(files)


def read_token_ids(paths: Iterable[str | Path], *, encoding: str = "cl100k_base") -> np.ndarray:
    """Token ids of every file under ``paths`` in sorted order, each followed by EOT (int64)."""
    from engram_sdk.tokenizer import get_tokenizer

    tok = get_tokenizer(encoding)
    texts = [f.read_bytes().decode("utf-8", errors="replace") for f in corpus_files(paths)]
    ids: list[int] = []
    for chunk in tok.encode_batch(texts):
        ids += [*chunk, tok.eot_id]
    return np.asarray(ids, dtype=np.int64)
