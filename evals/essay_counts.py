"""Token counts of essay haystack units from cached per-word counts, without tokenizing them.

An essay unit is one of a dozen fixed sentence frames with six word slots, and byte-level
BPE tokenizers (tiktoken, GPT-2, SmolLM2's) never merge a token across a space before a
word or across punctuation: the tokens of ``" " + unit`` are those of the frame's fixed
segments plus those of ``" " + word`` for each filled slot. Counting the few thousand words
once per tokenizer gives every unit's count with a few array additions, so a 1M-token essay
(65K units) is counted in milliseconds instead of being tokenized.

:func:`essay_counts` checks that sum against the tokenizer on a sample of units and returns
``None`` when they differ (a tokenizer that merges across words): callers then count as
before. :func:`counted_units` hands the counts to a :class:`MemoCounter` as the units are
generated, so the length fitter and the full-prompt count find them there.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from engram_sdk.evals import words
from engram_sdk.evals.haystacks import FRAMES, SLOTS, EssayHaystack, Haystack
from engram_sdk.evals.length import ReservingCounter, TokenCounter
from engram_sdk.evals.memo_counter import MemoCounter

_SLOT = re.compile(r" \{(\w+)\}")
CHECKED_UNITS = 256


@dataclass(frozen=True)
class EssayCounts:
    """Per frame: tokens of its fixed segments and which slots it fills; per slot: tokens of
    ``" " + word`` for every word of the slot's list."""

    base: np.ndarray  # (frames,)
    uses: np.ndarray  # (frames, slots) of 0/1
    word_tokens: tuple[np.ndarray, ...]  # one per slot

    def counts(self, draws: np.ndarray) -> np.ndarray:
        """Tokens of ``" " + unit`` for every unit of a block of draws (shape ``(7, n)``)."""
        frames = draws[0]
        total = self.base[frames].copy()
        for k, table in enumerate(self.word_tokens):
            total += self.uses[frames, k] * table[draws[k + 1]]
        return total


def _slot_words() -> dict[str, tuple[str, ...]]:
    adjs, ns, vs = words.adjectives(), words.nouns(), words.verbs()
    return {"a": adjs, "a2": adjs, "n": ns, "n2": ns, "n3": ns, "v": vs}


_TABLES: dict[str, EssayCounts | None] = {}


def essay_counts(counter: TokenCounter) -> EssayCounts | None:
    """The count table for ``counter`` (built once per counter name), or ``None`` when the sum
    of parts is not the tokenizer's count on a sample of units."""
    if counter.name in _TABLES:
        return _TABLES[counter.name]
    by_slot = _slot_words()
    lists = {id(ws): ws for ws in by_slot.values()}
    counted = {k: np.asarray(counter.count_batch([" " + w for w in ws])) for k, ws in lists.items()}
    word_tokens = tuple(counted[id(by_slot[s])] for s in SLOTS)
    base, uses = [], []
    for frame in FRAMES:
        fixed = [seg for seg in _SLOT.split(" " + frame)[::2] if seg]
        base.append(sum(counter.count_batch(fixed)))
        used = set(_SLOT.findall(frame))
        uses.append([int(s in used) for s in SLOTS])
    table = EssayCounts(np.asarray(base), np.asarray(uses), word_tokens)
    _TABLES[counter.name] = table if _agrees(table, counter, by_slot) else None
    return _TABLES[counter.name]


def _agrees(table: EssayCounts, counter: TokenCounter, by_slot: dict) -> bool:
    rng = random.Random(0)
    draws = np.asarray(
        [[rng.randrange(len(FRAMES)) for _ in range(CHECKED_UNITS)]]
        + [[rng.randrange(len(by_slot[s])) for _ in range(CHECKED_UNITS)] for s in SLOTS]
    )
    texts = [
        " " + FRAMES[f].format(**{s: by_slot[s][i] for s, i in zip(SLOTS, rest, strict=True)})
        for f, *rest in draws.T.tolist()
    ]
    return bool(np.array_equal(table.counts(draws), counter.count_batch(texts)))


def memo_of(counter: TokenCounter) -> MemoCounter | None:
    """The :class:`MemoCounter` that ``counter`` remembers counts in, if any."""
    if isinstance(counter, ReservingCounter):
        counter = counter.inner
    return counter if isinstance(counter, MemoCounter) else None


def counted_units(
    haystack: Haystack, seed: int, counter: TokenCounter
) -> tuple[Iterator[str], Iterator[int] | None]:
    """``haystack.units(seed)`` and, where :class:`EssayCounts` applies, each unit's count
    (``" " + unit``, in the same order), also taught to ``counter``'s :class:`MemoCounter`
    so that counting the whole prompt finds them; ``None`` when the units must be counted."""
    memo = memo_of(counter)
    if memo is None or not isinstance(haystack, EssayHaystack) or not haystack.vectorized:
        return haystack.units(seed), None
    table = essay_counts(memo.inner)
    if table is None:
        return haystack.units(seed), None

    def counts() -> Iterator[int]:
        for texts, draws in haystack.blocks(seed):
            block = table.counts(draws).tolist()
            glued = " " + texts[-1]
            if not memo.knows(glued):
                memo.remember([" " + t for t in texts], block)
            yield from block

    return haystack.units(seed), counts()
