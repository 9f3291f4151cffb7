"""How recalled text reaches the reader: focus keeps the lines holding the query's terms and
nothing that only looks alike; ranked keeps every line with the best matches last."""

import re

import pytest
from engram_sdk.evals import MemoryAdapter, TiktokenCounter, generate, niah_samples
from engram_sdk.evals.adapters import BaseAdapter
from engram_sdk.evals.focus import arrange, focus, ranked

from engram_sdk.errors import InputError

COUNTER = TiktokenCounter()
NEEDLE = re.compile(r"One of the special magic \w+ for (\S+) is: (\S+?)\.")


class Capture(BaseAdapter):
    """A reader that keeps the context it was handed."""

    name = "capture"

    def __init__(self) -> None:
        self.contexts: list[str] = []

    def answer(self, sample):
        self.contexts.append(sample.context)
        return ""


@pytest.mark.parametrize(
    "task", ["niah_multikey_2", "niah_multikey_3", "niah_multivalue", "niah_multiquery"]
)
def test_focused_context_holds_exactly_the_queried_needles(task):
    reader = Capture()
    memory = MemoryAdapter(reader, 2048, context="focus")
    for s in generate(task, 16384, 2, COUNTER, seed=6):
        answer = memory.answer(s)
        ctx = reader.contexts[-1]
        keys = set(re.split(r", and |, ", s.query))
        pairs = NEEDLE.findall(ctx)
        assert pairs and {k for k, _ in pairs} == keys  # no look-alike needle of another key
        assert sorted(v for _, v in pairs) == sorted(s.outputs)
        assert answer.info["recall"] == 1.0


def test_grid_focus_keeps_the_needle_sentence():
    (s,) = niah_samples([8192], [40], 1, COUNTER, seed=1)
    out = focus(s.context, s.query)
    assert out == s.meta["needles"][0]


def test_focus_leaves_text_without_query_terms_alone():
    assert focus("alpha beta.\ngamma.", "what is it?") == "alpha beta.\ngamma."
    assert focus("alpha beta.\ngamma delta.", "delta") == "gamma delta."


@pytest.mark.parametrize("task", ["niah_multikey_2", "niah_multikey_3"])
def test_ranked_context_keeps_every_line_and_ends_with_the_queried_needle(task):
    plain, rank = Capture(), Capture()
    for s in generate(task, 8192, 2, COUNTER, seed=4):
        MemoryAdapter(plain, 2048).answer(s)
        MemoryAdapter(rank, 2048, context="ranked").answer(s)
        recalled, ordered = plain.contexts[-1], rank.contexts[-1]
        lines = [x for x in recalled.splitlines() if x.strip() and not x.startswith("[")]
        assert sorted(ordered.splitlines()) == sorted(x.strip() for x in lines)
        assert NEEDLE.findall(ordered.splitlines()[-1]) == [(s.query, s.outputs[0])]


def test_ranked_is_stable_and_unknown_modes_are_refused():
    text = "b one.\nalpha two.\nc three.\nalpha four."
    assert ranked(text, "alpha") == "b one.\nc three.\nalpha two.\nalpha four."
    assert arrange(text, "alpha", "passages") == text
    with pytest.raises(InputError, match="context mode 'lines'"):
        MemoryAdapter(Capture(), 100, context="lines")


def test_list_queries_are_split_into_their_keys_and_nothing_else():
    from engram_sdk.evals.focus import sub_queries

    assert sub_queries("a-b, c-d, e-f, and g-h") == ["a-b", "c-d", "e-f", "g-h"]
    assert sub_queries("a-b and c-d") == ["a-b", "c-d"]
    for whole in ("habitual-situation", "In 1990, who won the cup?", "What is the best thing?"):
        assert sub_queries(whole) == [whole]


def test_every_key_of_a_multiquery_gets_its_share_of_the_budget():
    reader = Capture()
    memory = MemoryAdapter(reader, 2048, context="focus")
    for s in generate("niah_multiquery", 32768, 2, COUNTER, seed=8):
        answer = memory.answer(s)
        assert answer.info["recall"] == 1.0
        assert sorted(v for _, v in NEEDLE.findall(reader.contexts[-1])) == sorted(s.outputs)
        assert answer.info["context_tokens"] <= 2048
