"""Essay units counted from cached per-word counts: each unit's count is the tokenizer's
own, a sample fitted with them has the exact token count the tokenizer gives its prompt, and a
tokenizer for which the parts do not add up is left to count as before."""

from collections.abc import Sequence

import pytest
from engram_sdk.evals import words
from engram_sdk.evals.essay_counts import counted_units, essay_counts
from engram_sdk.evals.haystacks import FRAMES, SLOTS, EssayHaystack
from engram_sdk.evals.length import ReservingCounter, TiktokenCounter
from engram_sdk.evals.memo_counter import MemoCounter
from engram_sdk.evals.tasks import generate_one

TIKTOKEN = TiktokenCounter()


@pytest.fixture(scope="module")
def block():
    texts, draws = next(iter(EssayHaystack().blocks(seed=5)))
    return texts, draws


def test_block_texts_are_their_frames_filled_with_the_drawn_words(block):
    texts, draws = block
    lists = {"a": words.adjectives(), "a2": words.adjectives(), "v": words.verbs()}
    lists |= {"n": words.nouns(), "n2": words.nouns(), "n3": words.nouns()}
    for i in range(0, len(texts), 97):
        fill = {s: lists[s][draws[k + 1, i]] for k, s in enumerate(SLOTS)}
        assert texts[i] == FRAMES[draws[0, i]].format(**fill)


def test_unit_counts_are_the_tokenizers(block):
    texts, draws = block
    table = essay_counts(TIKTOKEN)
    assert table is not None
    assert table.counts(draws).tolist() == TIKTOKEN.count_batch([" " + t for t in texts])


@pytest.mark.parametrize("reserve", [0, 7])
def test_fitted_sample_has_the_exact_token_count(reserve):
    memo = MemoCounter(TiktokenCounter())
    counter = ReservingCounter(memo, reserve) if reserve else memo
    _, counts = counted_units(EssayHaystack(), 42, counter)
    assert counts is not None
    s = generate_one("niah_single_2", 32768, 1, counter)
    assert s.length == TIKTOKEN.count(s.prompt) + s.max_new_tokens
    assert s.length_w_model_temp == s.length + reserve
    assert 32768 - 328 <= s.length_w_model_temp <= 32768  # RULER's 1% tolerance


class CharCounter:
    """Four characters a token: the parts of a unit do not add up to the whole."""

    name = "chars/4"

    def count(self, text: str) -> int:
        return len(text) // 4

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(t) // 4 for t in texts]


def test_a_tokenizer_whose_parts_do_not_add_up_counts_as_before():
    assert essay_counts(CharCounter()) is None
    units, counts = counted_units(EssayHaystack(), 42, MemoCounter(CharCounter()))
    assert counts is None
    assert next(units) == next(EssayHaystack().units(42))
