"""Remembered counts: a long text counted piece by piece equals counting it whole."""

from __future__ import annotations

import pytest
from engram_sdk.evals import TiktokenCounter, generate
from engram_sdk.evals.memo_counter import MemoCounter

TASKS = ["niah_single_2", "niah_multikey_2", "niah_multikey_3", "vt", "cwe", "fwe"]


class Counting:
    """A counter that records how many characters it was asked to tokenize."""

    def __init__(self) -> None:
        self.inner = TiktokenCounter(threads=1)
        self.name = self.inner.name
        self.chars = 0

    def count(self, text: str) -> int:
        self.chars += len(text)
        return self.inner.count(text)

    def count_batch(self, texts):
        self.chars += sum(map(len, texts))
        return self.inner.count_batch(texts)


@pytest.fixture(scope="module")
def samples():
    whole = TiktokenCounter(threads=1)
    return [s for t in TASKS for s in generate(t, 4096, 1, whole, seed=11)]


def test_piecewise_sums_equal_whole_counts(samples):
    whole = TiktokenCounter(threads=1)
    memo = MemoCounter(TiktokenCounter(threads=1), long_chars=0)  # every text in pieces
    for s in samples:
        for text in (s.input, s.prompt, s.context, s.input + "\n\n" + s.input):
            assert memo.count(text) == whole.count(text), s.task


def test_a_needle_moved_in_a_known_haystack_costs_only_the_new_pieces(samples):
    inner = Counting()
    memo = MemoCounter(inner, long_chars=0)
    s = next(x for x in samples if x.task == "niah_single_2")
    needle = s.meta["needles"][0]
    haystack = s.context.replace(needle + " ", "")
    memo.count(haystack)
    first = inner.chars
    cut = haystack.index(". ", len(haystack) // 3) + 1
    moved = haystack[:cut] + " " + needle + haystack[cut:]
    assert memo.count(moved) == TiktokenCounter(threads=1).count(moved)
    assert inner.chars - first < 4 * len(needle)  # the needle's sentence, not the haystack


def test_batches_and_a_full_memory_give_the_inner_counts():
    memo = MemoCounter(TiktokenCounter(threads=1), max_entries=3)
    texts = ["one two.", "Three four.", "one two.", "five", "six seven", "eight"]
    assert memo.count_batch(texts) == TiktokenCounter(threads=1).count_batch(texts)
    assert memo.count("five") == 1
