"""``Memory.search(match="words")``: the ranking by words alone, without the phrase check."""

from pathlib import Path

import numpy as np

from engram_sdk.memory import Memory
from engram_sdk.memory.fold import fold
from tests.memory.test_memory import WORDS, corpus


def _texts(mem: Memory, hits: list) -> list[str]:
    sid = mem.scope_id("default")
    return [p.text for p in mem.passages(sid, [h.passage_id for h in hits])]


def test_words_match_gives_the_phrase_searchs_hits_where_the_phrase_occurs_nowhere(
    tmp_path: Path,
) -> None:
    files = corpus(3, 40)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    everything = [fold(t) for t in files.values()]
    rng = np.random.default_rng(4)
    checked = 0
    with Memory.open("dram://") as mem:
        mem.ingest(tmp_path, progress=False)
        for _ in range(60):
            words = list(rng.choice(WORDS, size=rng.integers(2, 4), replace=False))
            query = " ".join(words)
            if any(fold(query) in t for t in everything):  # the oracle: it occurs somewhere
                continue
            k = int(rng.integers(1, 8))
            by_words = mem.search(query, k=k, match="words")
            assert [(h.passage_id, h.score) for h in by_words] == [
                (h.passage_id, h.score) for h in mem.search(query, k=k)
            ]
            assert by_words and len(by_words) <= k
            for text in _texts(mem, by_words):  # each hit holds one of the words
                assert any(w in fold(text) for w in words)
            checked += 1
    assert checked >= 20


def test_words_match_ranks_a_quote_no_higher_than_the_same_words_apart() -> None:
    with Memory.open("dram://") as mem:
        mem.add("the ledger commit order", source="quote.txt")
        mem.add("commit then ledger order", source="apart.txt")
        by_phrase = mem.search("ledger commit", k=2)
        by_words = mem.search("ledger commit", k=2, match="words")
    assert by_phrase[0].source == "quote.txt" and by_phrase[0].score > by_phrase[1].score
    assert {h.source for h in by_words} == {"quote.txt", "apart.txt"}
    assert by_words[0].score == by_words[1].score


def test_words_match_of_one_word_is_the_phrase_search() -> None:
    with Memory.open("dram://") as mem:
        for i in range(5):
            mem.add(f"line {i} holds ledgers and stones", source=f"f{i}.txt")
        assert mem.search("ledger", k=3, match="words") == mem.search("ledger", k=3)


def test_words_that_give_fewer_than_k_hits_leave_the_answer_to_the_phrase_search() -> None:
    with Memory.open("dram://") as mem:
        mem.add("the ledger commit order", source="quote.txt")
        mem.add("commit then ledger order", source="apart.txt")
        mem.add("nothing of either here", source="other.txt")
        by_words = mem.search("ledger commit", k=5, match="words")  # two passages hold them
        assert by_words == mem.search("ledger commit", k=5)
    assert [h.source for h in by_words] == ["quote.txt", "apart.txt"]
    assert by_words[0].score > by_words[1].score
