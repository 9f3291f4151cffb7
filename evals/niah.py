"""Needle-in-a-haystack generators: RULER's niah_* tasks and the gkamradt depth × length grid."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
from engram_sdk.evals import templates
from engram_sdk.evals.essay_counts import counted_units
from engram_sdk.evals.haystacks import EssayHaystack, Haystack, NoiseHaystack, replay
from engram_sdk.evals.length import TokenCounter, fit_units, tolerance_for
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.taskconfig import TaskConfig
from engram_sdk.evals.words import distinct_values, random_value

# RULER samples essay insertion depths from 40 evenly spaced percentages.
RULER_DEPTHS = [int(x) for x in np.round(np.linspace(0, 100, num=40, endpoint=True))]


def _needle_haystack(
    type_k: str, type_v: str, exclude_k: set[str], exclude_v: set[str]
) -> Haystack:
    class _Needles(Haystack):
        def units(self, seed: int) -> Iterator[str]:
            stream = replay(
                ("needles", type_k, type_v, seed), lambda: _needles(type_k, type_v, seed)
            )
            for k, v, line in stream:
                if k not in exclude_k and v not in exclude_v:
                    yield line

    return _Needles(name="needle", joiner="\n")


def _needles(type_k: str, type_v: str, seed: int) -> Iterator[tuple[str, str, str]]:
    """(key, value, needle line) of a needle haystack, before the sample's own keys and
    values are left out."""
    rng = random.Random(f"needle-haystack-{seed}")
    while True:
        k = random_value(type_k, rng)
        v = random_value(type_v, rng)
        yield k, v, templates.NIAH_NEEDLE.format(type_needle_v=type_v, key=k, value=v)


def _insert(
    units: list[str], needles: list[str], fractions: list[float]
) -> tuple[list[str], list[int]]:
    """Insert each needle before unit ``int(n * fraction)``; returns the list and needle slots."""
    n = len(units)
    order = sorted(range(len(needles)), key=lambda i: fractions[i])
    out: list[str] = []
    slots: list[int] = []
    prev = 0
    for i in order:
        pos = min(int(n * fractions[i]), n)
        out.extend(units[prev:pos])
        slots.append(len(out))
        out.append(needles[i])
        prev = pos
    out.extend(units[prev:])
    return out, slots


def ruler_niah(
    config: TaskConfig,
    length: int,
    index: int,
    seed: int,
    counter: TokenCounter,
    haystack: Haystack | None = None,
) -> Sample:
    """One RULER niah_* sample (keys, values, haystack kind and needle counts from the config)."""
    params = config.params
    rng = random.Random(f"{config.name}|{length}|{seed}|{index}")
    type_k, type_v = params["type_needle_k"], params["type_needle_v"]
    n_v, n_q = params["num_needle_v"], params["num_needle_q"]
    n_k = max(params["num_needle_k"], n_q)
    keys = distinct_values(type_k, n_k, rng)
    values = [distinct_values(type_v, n_v, rng) for _ in keys]
    all_values = [v for vs in values for v in vs]
    if len(set(all_values)) != len(all_values):  # values must differ across keys too
        taken: set[str] = set()
        values = []
        for _ in keys:
            vs = distinct_values(type_v, n_v, rng, exclude=taken)
            taken |= set(vs)
            values.append(vs)
    needles = [
        templates.NIAH_NEEDLE.format(type_needle_v=type_v, key=k, value=v)
        for k, vs in zip(keys, values, strict=True)
        for v in vs
    ]
    rng.shuffle(needles)
    kind = params["type_haystack"]
    if haystack is None:
        if kind == "noise":
            haystack = NoiseHaystack()
        elif kind == "essay":
            haystack = EssayHaystack()
        else:
            haystack = _needle_haystack(type_k, type_v, set(keys), {v for vs in values for v in vs})
    if kind == "essay" or haystack.name == "folder":
        fractions = [d / 100 for d in rng.sample(RULER_DEPTHS, len(needles))]
    else:
        fractions = [rng.random() for _ in needles]

    picked = rng.sample(range(n_k), n_q)
    queries = [keys[i] for i in picked]
    answers = [v for i in picked for v in values[i]]
    query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]
    template, prefix, shown_v = config.template, config.answer_prefix, type_v
    if n_q * n_v == 1:  # RULER's singular wording
        for a, b in (("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer")):
            template, prefix = template.replace(a, b), prefix.replace(a, b)
        shown_v = type_v[:-1]
    head, tail = template.split("{context}")
    head = head.format(type_needle_v=shown_v)
    tail = tail.format(type_needle_v=shown_v, query=query)
    prefix = prefix.format(type_needle_v=shown_v, query=query)
    joiner = haystack.joiner
    slots_out: list[int] = []

    def build(units: list[str], counts: np.ndarray) -> str:
        body, slots = _insert(units, needles, fractions)
        slots_out[:] = slots
        return head + joiner.join(body) + tail + prefix

    budget = length - config.tokens_to_generate
    units, counts = counted_units(haystack, seed, counter)
    tolerance = tolerance_for(length)
    fitted = fit_units(build, units, joiner, counter, budget, tolerance, known_counts=counts)
    text = fitted.text[: len(fitted.text) - len(prefix)]
    ctx_end = len(text) - len(tail)
    return config.sample(
        target_length=length,
        index=index,
        seed=seed,
        counter=counter,
        prompt_tokens=fitted.tokens,
        input=text,
        answer_prefix=prefix,
        outputs=answers,
        query=query,
        context_span=(len(head), ctx_end),
        meta={
            "haystack": haystack.name,
            "depths": sorted(round(f * 100, 2) for f in fractions),
            "n_units": fitted.n_units,
            "needles": needles,
        },
    )


def grid_niah(
    config: TaskConfig,
    length: int,
    depth: float,
    index: int,
    seed: int,
    counter: TokenCounter,
    haystack: Haystack | None = None,
    needles: list[str] | None = None,
    question: str | None = None,
    answers: list[str] | None = None,
) -> Sample:
    """A gkamradt-style sample: needle(s) at ``depth`` percent of the haystack's tokens.

    The first needle goes at the last unit boundary at or before ``depth`` % of the
    haystack tokens (gkamradt backs up to a sentence end); further needles are spread
    evenly over the rest of the document, as in gkamradt's multi-needle test.
    """
    if not 0 <= depth <= 100:
        from engram_sdk.errors import InputError

        raise InputError(f"depth must be within [0, 100], got {depth}")
    haystack = haystack or EssayHaystack()
    needles = list(needles or [templates.NIAH_DEFAULT_NEEDLE])
    question = question or templates.NIAH_DEFAULT_QUESTION
    answers = list(answers or templates.NIAH_DEFAULT_ANSWERS)
    step = (100 - depth) / len(needles)
    depths = [depth + i * step for i in range(len(needles))]
    head, tail_t = config.head_and_tail
    tail = tail_t.format(query=question)
    prefix = config.answer_prefix
    joiner = haystack.joiner
    info: dict[str, Any] = {}

    def build(units: list[str], counts: np.ndarray) -> str:
        cum = np.concatenate([[0], np.cumsum(counts)])
        total = int(cum[-1])
        slots = [int(np.searchsorted(cum, total * d / 100, side="right")) - 1 for d in depths]
        body: list[str] = []
        prev = 0
        for needle, slot in zip(needles, slots, strict=True):
            body.extend(units[prev:slot])
            body.append(needle)
            prev = slot
        body.extend(units[prev:])
        info["slots"] = slots
        return head + joiner.join(body) + tail + prefix

    budget = length - config.tokens_to_generate
    units, counts = counted_units(haystack, seed, counter)
    tolerance = tolerance_for(length)
    fitted = fit_units(build, units, joiner, counter, budget, tolerance, known_counts=counts)
    text = fitted.text[: len(fitted.text) - len(prefix)]
    return config.sample(
        target_length=length,
        index=index,
        seed=seed,
        counter=counter,
        prompt_tokens=fitted.tokens,
        input=text,
        answer_prefix=prefix,
        outputs=answers,
        query=question,
        context_span=(len(head), len(text) - len(tail)),
        meta={
            "depth": depth,
            "depths": depths,
            "haystack": haystack.name,
            "n_units": fitted.n_units,
            "needles": needles,
        },
    )
