"""Token counts remembered across samples: a haystack is tokenized once per seed.

Every sample of a run over the same haystack seed (RULER's niah_* essays at every length,
the grid's repeats of a length) shares most of its text with the others; only the needles,
the question and the cut-off differ. :class:`MemoCounter` wraps a counter and remembers:

* short texts whole (the length fitter's blocks of haystack units);
* long texts piece by piece, cut where a sentence ends (between ``"."`` and the space
  after it) and where a line ends with ``".\\n"`` and the next starts with a non-space:
  byte-level BPE pre-tokenizers (GPT-2, tiktoken, SmolLM2's) never join a token across
  these cuts, so the pieces' counts add up to the whole text's, and a needle inserted into
  a known haystack leaves every other piece known.

``tests/evals/test_memo_counter.py`` checks the sums against counting the whole text.
"""

from __future__ import annotations

from collections.abc import Sequence

from engram_sdk.evals.length import TokenCounter


def pieces(text: str) -> list[str]:
    """``text`` cut after every ``"."`` followed by a space, and after every ``".\\n"``
    followed by a non-space (string splits, no regex scan: a 5 MB text in milliseconds)."""
    sentences = text.split(". ")
    if len(sentences) == 1:
        out = sentences
    else:
        out = [sentences[0] + "."]
        out += [" " + s + "." for s in sentences[1:-1]]
        out.append(" " + sentences[-1])
    if ".\n" not in text:
        return out
    cut: list[str] = []
    for piece in out:
        if ".\n" not in piece:
            cut.append(piece)
            continue
        lines = piece.split(".\n")
        current = lines[0]
        for line in lines[1:]:
            if line and not line[0].isspace():
                cut.append(current + ".\n")
                current = line
            else:
                current += ".\n" + line
        cut.append(current)
    return cut


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

    def knows(self, text: str) -> bool:
        """Whether ``text``'s count is remembered."""
        return text in self._known

    def remember(self, texts: Sequence[str], counts: Sequence[int]) -> None:
        """Learn counts found another way (:mod:`engram_sdk.evals.essay_counts`); the caller
        vouches that they are the inner counter's."""
        if len(self._known) + len(texts) > self.max_entries:
            self._known.clear()
        self._known.update(zip(texts, counts, strict=True))

    def count(self, text: str) -> int:
        if len(text) < self.long_chars:
            return self._lookup([text])[0]
        return sum(self._lookup(pieces(text)))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return self._lookup(texts)
