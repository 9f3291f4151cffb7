"""Token counts remembered across samples: a haystack is tokenized once per seed.

Every sample of a run over the same haystack seed (RULER's niah_* essays at every length,
the grid's repeats of a length) shares most of its text with the others; only the needles,
the question and the cut-off differ. :class:`MemoCounter` wraps a counter and remembers:

* short texts whole (the length fitter's blocks of haystack units);
* long texts piece by piece, cut where a sentence or line ends and the next begins
  (``". The"`` before the space, ``"\\n"`` before the next line's first character): byte-level
  BPE pre-tokenizers (GPT-2, tiktoken, SmolLM2's) split there too, so the pieces' counts add
  up to the whole text's, and a needle inserted into a known haystack leaves every other
  piece known.

``tests/evals/test_memo_counter.py`` checks the sums against counting the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from engram_sdk.evals.length import TokenCounter

_PIECE = re.compile(r"(?<=[.!?])(?= [A-Z])|(?<=\S\n)(?=\S)")
LONG_CHARS = 1 << 16


class MemoCounter:
    """``inner``'s counts, remembered (at most ``max_entries`` texts, then forgotten)."""

    def __init__(
        self, inner: TokenCounter, *, long_chars: int = LONG_CHARS, max_entries: int = 1 << 21
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.long_chars = long_chars
        self.max_entries = max_entries
        self._known: dict[str, int] = {}

    def _lookup(self, texts: Sequence[str]) -> list[int]:
        known = self._known
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing and len(known) + len(missing) > self.max_entries:
            known.clear()
            missing = list(dict.fromkeys(texts))
        if missing:
            known.update(zip(missing, self.inner.count_batch(missing), strict=True))
        return [known[t] for t in texts]

    def count(self, text: str) -> int:
        if len(text) < self.long_chars:
            return self._lookup([text])[0]
        return sum(self._lookup(_PIECE.split(text)))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return self._lookup(texts)
