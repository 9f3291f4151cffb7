"""Extractive decoding's rule, apart from any model: a reply made of verbatim spans of a
context, joined by separators.

A small reader that finds the right line still mis-copies what it reads (a UUID with one
group changed, a 7-digit number with one digit wrong). Constraining decoding so that every
value it writes is a run of the context's own bytes removes that failure and leaves the
choice of *which* run to the model.

The rule works on the context's bytes, whatever tokens the model would split them into:

* outside a span the model may write a separator (whitespace, ``, ; : .``, ``and``, ``or``),
  end the reply, or start a span at a word start (after whitespace or an opening quote or
  bracket), a leading space included in the token or not;
* inside a span the next token must be the context's next bytes at one of the positions the
  span may be at; the span may close (a separator, or the end) only where the context's word
  ends (whitespace, the end, or closing punctuation before whitespace), so a value is never
  cut in the middle;
* a span never starts at a word of the question's query (``banned`` terms: a reader asked
  for the value of a key does not answer with the key), and with ``no_repeat`` never where a
  closed span started (a reader listing four values does not write one of them twice).

The automaton is non-deterministic (a token can continue one position and close another);
it keeps every live hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

_SPACE = frozenset(b" \t\n\r")
_OPENING = frozenset(b"\"'([{")
_CLOSING = frozenset(b".,;:!?)]}\"'")
_SEPARATOR_BYTES = frozenset(b" \t\n\r,;:.")
_SEPARATOR_WORDS = frozenset({b"and", b"or"})
_TERM = re.compile(rb"[A-Za-z0-9]+")
_MAX_PIECE = 32


def is_separator(piece: bytes) -> bool:
    """Whether a token's bytes join spans: whitespace/punctuation only, or ``and``/``or``."""
    if not piece:
        return False
    if all(b in _SEPARATOR_BYTES for b in piece):
        return True
    return piece.strip().lower() in _SEPARATOR_WORDS


def _word_char(byte: int) -> bool:
    return byte >= 128 or chr(byte).isalnum()


class Vocabulary:
    """What the automaton needs of a tokenizer: every token's bytes and the end tokens."""

    def __init__(self, pieces: Sequence[bytes], end_ids: Sequence[int]) -> None:
        self.size = len(pieces)
        self.pieces = list(pieces)
        self.end_ids = np.asarray(sorted(set(end_ids)), dtype=np.int64)
        self.separators = np.asarray(
            [i for i, p in enumerate(self.pieces) if is_separator(p)], dtype=np.int64
        )
        self.separator_set = frozenset(self.separators.tolist())
        by_bytes: dict[bytes, list[int]] = {}
        for i, p in enumerate(self.pieces):
            if p:
                by_bytes.setdefault(p, []).append(i)
        self.by_bytes = by_bytes
        self.longest = min(_MAX_PIECE, max((len(p) for p in by_bytes), default=1))

    def matching(self, text: bytes, pos: int) -> list[int]:
        """Ids of the tokens whose bytes are ``text[pos:pos+k]`` for some ``k >= 1``."""
        out: list[int] = []
        for k in range(1, min(self.longest, len(text) - pos) + 1):
            out += self.by_bytes.get(text[pos : pos + k], ())
        return out


class SpanAutomaton:
    """The state of one extractive reply over the bytes of ``context`` (see the module doc)."""

    def __init__(
        self,
        context: str,
        vocab: Vocabulary,
        *,
        banned: Iterable[str] = (),
        no_repeat: bool = True,
    ) -> None:
        self.vocab, self.no_repeat = vocab, no_repeat
        self.text = context.encode("utf-8")
        banned_terms = {t.lower().encode() for t in banned}
        self.starts = [
            p for p in _word_starts(self.text) if _first_term(self.text, p) not in banned_terms
        ]
        self.used_starts: set[int] = set()
        self.hyps: dict[int, int] = {}  # next byte of the context -> where the span started
        self.free = True
        self.steps = 0
        # token -> (start, next byte) for every way a span can begin with that token
        self._openings: dict[int, list[tuple[int, int]]] = {}
        for p in self.starts:
            for i in vocab.matching(self.text, p):
                self._openings.setdefault(i, []).append((p, p + len(vocab.pieces[i])))
            if p > 0 and self.text[p - 1] == 0x20:  # a token carrying the space before
                for i in vocab.matching(self.text, p - 1):
                    if i not in vocab.separator_set:
                        self._openings.setdefault(i, []).append((p, p - 1 + len(vocab.pieces[i])))
        self._start_tokens: np.ndarray | None = None

    def _start_token_ids(self) -> np.ndarray:
        if self._start_tokens is None:
            used = self.used_starts
            ids = [t for t, ps in self._openings.items() if any(p not in used for p, _ in ps)]
            self._start_tokens = np.asarray(sorted(ids), dtype=np.int64)
        return self._start_tokens

    def _may_close(self) -> bool:
        return any(_can_end(self.text, p) for p in self.hyps)

    def allowed(self) -> np.ndarray:
        """The token ids the model may write next (sorted, unique)."""
        ids: list[int] = []
        for p in self.hyps:
            ids += self.vocab.matching(self.text, p)
        parts = [np.asarray(ids, dtype=np.int64)]
        if self.free or self._may_close():
            parts += [self.vocab.separators, self.vocab.end_ids]
        if self.free:
            parts.append(self._start_token_ids())
        allowed = np.unique(np.concatenate(parts))
        return allowed if len(allowed) else self.vocab.end_ids  # stuck: end the reply

    def step(self, token: int) -> None:
        """Advance by the token the model wrote (one of :meth:`allowed`)."""
        piece = self.vocab.pieces[token] if 0 <= token < self.vocab.size else b""
        closing = token in self.vocab.separator_set and (self.free or self._may_close())
        if closing and self.no_repeat:
            closed = {s for p, s in self.hyps.items() if _can_end(self.text, p)}
            if closed - self.used_starts:
                self.used_starts |= closed
                self._start_tokens = None
        nxt = {
            p + len(piece): s
            for p, s in self.hyps.items()
            if piece and self.text.startswith(piece, p)
        }
        if self.free and not closing:
            for p, after in self._openings.get(token, ()):
                if p not in self.used_starts:
                    nxt.setdefault(after, p)
        self.hyps, self.free = nxt, closing
        self.steps += 1

    def mask(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` (one per vocabulary token) with every disallowed token at -inf."""
        keep = self.allowed()
        keep = keep[keep < scores.shape[-1]]
        out = np.full_like(scores, -np.inf)
        out[..., keep] = scores[..., keep]
        return out


def _word_starts(text: bytes) -> list[int]:
    prev_ok = True
    out = []
    for p, byte in enumerate(text):
        if prev_ok and _word_char(byte):
            out.append(p)
        prev_ok = byte in _SPACE or byte in _OPENING
    return out


def _first_term(text: bytes, pos: int) -> bytes:
    m = _TERM.match(text, pos)
    return m.group(0).lower() if m else b""


def _can_end(text: bytes, offset: int) -> bool:
    """Whether a word ends just before ``offset``: the end, whitespace, or closing
    punctuation followed by whitespace or the end."""
    i = offset
    while i < len(text) and text[i] in _CLOSING:
        i += 1
    return i == len(text) or text[i] in _SPACE
