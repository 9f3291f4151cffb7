"""Extractive reading with the real offline reader (SmolLM2-135M through llama.cpp): the
reply copies the value verbatim, never answers with the key, and is made of whole-word
spans of the context (checked by a regex segmentation, independent of the automaton)."""

import re

import pytest
from engram_sdk.evals.adapters import LlamaCppAdapter
from engram_sdk.evals.extractive import ExtractiveAdapter
from engram_sdk.evals.sample import Sample

pytestmark = pytest.mark.slow

NEEDLES = {
    "flowery-splendor": "f277a327-340e-47cc-a35e-2da042a6c81b",
    "different-bobcat": "5e788f5e-c6db-484e-8e66-11fbc79e0a2e",
}


def needle_sample(key: str, others: list[str]) -> Sample:
    head = (
        "A special magic uuid is hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the uuid afterwards.\n"
    )
    lines = [f"One of the special magic uuids for {k} is: {NEEDLES[k]}." for k in [key, *others]]
    context = "\n".join(lines)
    question = f"\nWhat is the special magic uuid for {key} mentioned in the provided text?"
    return Sample(
        task="niah_single_3",
        base_task="niah",
        length=0,
        length_w_model_temp=0,
        target_length=0,
        index=0,
        seed=0,
        input=head + context + question,
        answer_prefix=f" The special magic uuid for {key} mentioned in the provided text is",
        outputs=[NEEDLES[key]],
        metric="string_match_all",
        max_new_tokens=40,
        counter="test",
        query=key,
        context_span=(len(head), len(head) + len(context)),
    )


@pytest.fixture(scope="module")
def extractive():
    return ExtractiveAdapter(LlamaCppAdapter())


def whole_word_spans(reply: str, context: str) -> bool:
    """Whether ``reply`` is separators and whole-word runs of ``context`` (brute force)."""
    sep = re.compile(r"(?:[\s,;:.]|\band\b|\bor\b)+")
    words_at = {m.start() for m in re.finditer(r"(?<![^\s\"'(\[{])\w", context)}
    for run in filter(None, sep.split(reply)):
        if not any(context.startswith(run, a) for a in words_at):
            return False
    return True


def test_the_uuid_is_copied_verbatim(extractive):
    # free decoding wrote "2018-01-01-11-11-11-..." for this line (docs/evals.md)
    sample = needle_sample("flowery-splendor", [])
    reply = extractive.answer(sample).text
    assert NEEDLES["flowery-splendor"] in reply, reply
    assert whole_word_spans(reply, sample.context)


def test_the_key_is_not_the_answer(extractive):
    sample = needle_sample("different-bobcat", ["flowery-splendor"])
    reply = extractive.answer(sample).text
    assert "different-bobcat" not in reply
    assert whole_word_spans(reply, sample.context)
