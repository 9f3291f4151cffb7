"""RULER's ``--remove_newline_tab``: every run of whitespace in the prompt becomes one space.

RULER applies it to the whole prompt (answer prefix included) when it writes a sample; here
it is applied to a generated sample, keeping the haystack span and recounting the length.
"""

from __future__ import annotations

from engram_sdk.evals.length import TokenCounter
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.taskconfig import template_reserve


def flat(text: str) -> str:
    """``' '.join(text.split())``: RULER's whitespace flattening."""
    return " ".join(text.split())


def _flat_offset(text: str, i: int) -> int:
    """Where position ``i`` of ``text`` lands in ``flat(text)``."""
    if i >= len(text):
        return len(flat(text))
    return len(flat(text[:i] + "x")) - 1


def remove_newline_tab(sample: Sample, counter: TokenCounter) -> Sample:
    """``sample`` with its prompt flattened, as RULER writes it under ``--remove_newline_tab``."""
    joined = flat(sample.input + sample.answer_prefix)
    prefix_words = flat(sample.answer_prefix)
    body = joined[: len(joined) - len(prefix_words)].rstrip()
    spaced = sample.answer_prefix[:1].isspace() or sample.input[-1:].isspace()
    prefix = (" " if spaced else "") + prefix_words
    a, b = sample.context_span
    span = (_flat_offset(sample.input, a), min(_flat_offset(sample.input, b), len(body)))
    prompt_tokens = counter.count(body + prefix)
    length = prompt_tokens - template_reserve(counter) + sample.max_new_tokens
    reserve = sample.length_w_model_temp - sample.length
    return sample.model_copy(
        update={
            "input": body,
            "answer_prefix": prefix,
            "context_span": span,
            "length": length,
            "length_w_model_temp": length + reserve,
            "meta": {**sample.meta, "remove_newline_tab": True},
        }
    ).with_id()
