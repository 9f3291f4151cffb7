"""Tokenize a file, canonicalize it and look up its Engram addresses.

    python examples/addressing.py [FILE]

Shows streaming: hashing a file in chunks, carrying the last ids as prefix, gives exactly
the addresses of hashing it whole.
"""

import sys
from pathlib import Path

import numpy as np

from engram_sdk import NgramConfig, NgramHasher, get_tokenizer


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__)
    tok = get_tokenizer()
    canon = tok.canonicalize(tok.encode(path.read_text(errors="replace")))[None]
    hasher = NgramHasher(NgramConfig(vocab_size=tok.canonical.size, layer_ids=[1, 15]))

    whole = hasher.hash(canon, 1, flat=True)
    chunks, prev = [], canon[:, :0]
    for start in range(0, canon.shape[1], 1000):
        chunk = canon[:, start : start + 1000]
        chunks.append(hasher.hash(chunk, 1, prefix=prev, flat=True))
        prev = chunk
    assert np.array_equal(np.concatenate(chunks, axis=1), whole)

    print(f"{path}: {canon.shape[1]} tokens, {whole.shape[-1]} heads per token")
    print(
        f"distinct rows touched in layer 1: {len(np.unique(whole)):,} of {hasher.table_rows(1):,}"
    )
    print("chunked hashing == whole-file hashing: yes")


if __name__ == "__main__":
    main()
