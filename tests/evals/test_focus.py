"""Query focus: the recalled lines that hold the query's terms, nothing that only looks alike."""

import re

import pytest
from engram_sdk.evals import MemoryAdapter, TiktokenCounter, generate, niah_samples
from engram_sdk.evals.focus import focus

COUNTER = TiktokenCounter()
NEEDLE = re.compile(r"One of the special magic \w+ for (\S+) is: (\S+?)\.")


class Capture:
    """A reader that keeps the context it was handed."""

    name, concurrency = "capture", 1

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
    memory = MemoryAdapter(reader, 2048, focus=True)
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
