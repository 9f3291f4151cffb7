"""RULER's non-retrieval synthetic tasks: variable tracking (vt), common words (cwe), and
frequent coded words (fwe)."""

from __future__ import annotations

import math
import random
import string
from typing import Any

import numpy as np
from engram_sdk.evals import templates
from engram_sdk.evals.haystacks import NoiseHaystack
from engram_sdk.evals.length import TokenCounter, fit_count, fit_units, tolerance_for
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.words import common_words, key_word


def _chains(rng: random.Random, num_chains: int, num_hops: int, first_value: str | None = None):
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < num_chains * (num_hops + 1):
        v = "".join(rng.choices(string.ascii_uppercase, k=5))
        if v not in seen:
            seen.add(v)
            names.append(v)
    groups, chains = [], []
    for c in range(num_chains):
        vs = names[c * (num_hops + 1) : (c + 1) * (num_hops + 1)]
        value = first_value or str(rng.randint(10000, 99999))
        chain = [f"VAR {vs[0]} = {value}"] + [
            f"VAR {vs[j + 1]} = VAR {vs[j]} " for j in range(num_hops)
        ]
        groups.append(vs)
        chains.append(chain)
    return groups, chains


def _vt_text(chains: list[list[str]], fractions: list[list[float]], units: list[str]) -> str:
    sentences = list(units)
    for chain, fr in zip(chains, fractions, strict=True):
        positions = sorted(int(len(sentences) * f) for f in fr)
        for j, (pos, stmt) in enumerate(zip(positions, chain, strict=True)):
            sentences.insert(pos + j, stmt)
    return "\n".join(sentences).replace(". \n", ".\n")


def variable_tracking(
    task: str,
    params: dict[str, Any],
    length: int,
    index: int,
    seed: int,
    counter: TokenCounter,
    haystack=None,
) -> Sample:
    """Chains ``VAR A = 12345``, ``VAR B = VAR A`` … hidden in noise, after one worked example."""
    rng = random.Random(f"{task}|{length}|{seed}|{index}")
    num_chains, num_hops = params["num_chains"], params["num_hops"]
    spec = templates.RULER["variable_tracking"]
    noise = NoiseHaystack()

    # the one in-context example RULER prepends (about 500 tokens, its own variables)
    ex_groups, ex_chains = _chains(rng, num_chains, num_hops)
    ex_value = ex_chains[0][0].split("=")[-1].strip()
    ex_fr = [[rng.random() for _ in c] for c in ex_chains]
    ex_ctx = _vt_text(ex_chains, ex_fr, [templates_noise() for _ in range(12)])
    example = (
        spec["template"].format(context=ex_ctx, query=ex_value)
        + spec["answer_prefix"].format(num_v=num_hops + 1, query=ex_value)
        + " ".join(ex_groups[0])
        + "\n"
    )
    groups, chains = _chains(rng, num_chains, num_hops)
    value = chains[0][0].split("=")[-1].strip()
    fractions = [[rng.random() for _ in c] for c in chains]
    head_t, tail_t = spec["template"].split("{context}")
    head = example + head_t
    tail = tail_t.format(query=value)
    prefix = spec["answer_prefix"].format(num_v=num_hops + 1, query=value)

    def build(units: list[str], counts: np.ndarray) -> str:
        return head + _vt_text(chains, fractions, units) + tail + prefix

    budget = length - spec["tokens_to_generate"]
    fitted = fit_units(build, noise.units(seed), "\n", counter, budget, tolerance_for(length))
    text = fitted.text[: len(fitted.text) - len(prefix)]
    return Sample(
        task=task,
        length=length,
        index=index,
        seed=seed,
        input=text,
        answer_prefix=prefix,
        outputs=groups[0],
        metric="string_match_all",
        max_new_tokens=spec["tokens_to_generate"],
        tokens=fitted.tokens + spec["tokens_to_generate"],
        counter=counter.name,
        query=value,
        context_span=(len(head), len(text) - len(tail)),
        meta={"chains": chains, "n_units": fitted.n_units},
    ).with_id()


def templates_noise() -> str:
    """One noise line (the vt haystack unit)."""
    from engram_sdk.evals.haystacks import NOISE_SENTENCE

    return NOISE_SENTENCE


def _word_pool(n: int, rng: random.Random, base: list[str]) -> list[str]:
    if n <= len(base):
        return rng.sample(base, n)
    extra: set[str] = set(base)
    pool = list(base)
    while len(pool) < n:  # beyond the word list: adjective-noun pairs
        w = key_word(rng)
        if w not in extra:
            extra.add(w)
            pool.append(w)
    rng.shuffle(pool)
    return pool[:n]


def common_words_extraction(
    task: str,
    params: dict[str, Any],
    length: int,
    index: int,
    seed: int,
    counter: TokenCounter,
    haystack=None,
) -> Sample:
    """A numbered word list where ``num_cw`` words repeat ``freq_cw`` times, the rest ``freq_ucw``."""
    spec = templates.RULER["common_words_extraction"]
    base = list(common_words())
    random.Random(seed).shuffle(base)
    num_cw = params["num_cw"]
    if length < 4096:
        ex_args, main_reps = (20, 3, 1), (6, 1)
    else:
        ex_args, main_reps = (40, 10, 3), (params["freq_cw"], params["freq_ucw"])

    def example(rng: random.Random, num_words: int, cw: int, ucw: int) -> tuple[str, list[str]]:
        chosen = _word_pool(num_words, rng, base)
        common, uncommon = chosen[:num_cw], chosen[num_cw:]
        seq = common * cw + uncommon * ucw
        random.Random(seed).shuffle(seq)
        return " ".join(f"{i + 1}. {w}" for i, w in enumerate(seq)), common

    head_t, tail_t = spec["template"].split("{context}")
    prefix = spec["answer_prefix"]
    parts: dict[str, Any] = {}

    def build(num_words: int) -> str:
        rng = random.Random(f"{task}|{length}|{seed}|{index}")
        shots = []
        for _ in range(params.get("num_fewshot", 1)):
            ctx, ans = example(rng, ex_args[0], ex_args[1], ex_args[2])
            shots.append(
                head_t
                + ctx
                + tail_t
                + prefix
                + " "
                + " ".join(f"{i + 1}. {w}" for i, w in enumerate(ans))
            )
        ctx, ans = example(rng, num_words, *main_reps)
        head = "\n".join(shots) + "\n" + head_t
        parts.update(head=head, answer=ans, n=num_words)
        return head + ctx + tail_t + prefix

    budget = length - spec["tokens_to_generate"]
    n0 = max(num_cw + 1, budget // (4 * main_reps[1] + 1))
    text, tokens, n = fit_count(build, counter, budget, tolerance_for(length), n0, n_min=num_cw + 1)
    build(n)  # parts of the chosen size
    text = text[: len(text) - len(prefix)]
    return Sample(
        task=task,
        length=length,
        index=index,
        seed=seed,
        input=text,
        answer_prefix=prefix,
        outputs=parts["answer"],
        metric="string_match_all",
        max_new_tokens=spec["tokens_to_generate"],
        tokens=tokens + spec["tokens_to_generate"],
        counter=counter.name,
        query="most common words",
        context_span=(len(parts["head"]), len(text) - len(tail_t)),
        meta={"num_words": parts["n"]},
    ).with_id()


def _zeta(alpha: float, terms: int = 100_000) -> float:
    k = np.arange(1, terms + 1, dtype=np.float64)
    return float(np.sum(k**-alpha) + terms ** (1 - alpha) / (alpha - 1))


def freq_words_extraction(
    task: str,
    params: dict[str, Any],
    length: int,
    index: int,
    seed: int,
    counter: TokenCounter,
    haystack=None,
) -> Sample:
    """Zipf(alpha)-distributed 6-letter coded words; the answer is ranks 2–4 (rank 1 is '...')."""
    spec = templates.RULER["freq_words_extraction"]
    alpha = float(params["alpha"])
    wordlen = params.get("coded_wordlen", 6)
    budget = length - spec["tokens_to_generate"]
    vocab_size = params.get("vocab_size", -1)
    vocab_size = budget // 50 if vocab_size == -1 else vocab_size
    vocab_size = max(vocab_size, 8)
    rng = random.Random(f"{task}|{length}|{seed}|{index}")
    vocab: set[str] = set()
    while len(vocab) < vocab_size:
        vocab.add("".join(rng.choices(string.ascii_lowercase, k=wordlen)))
    words = sorted(vocab)
    random.Random(seed).shuffle(words)
    words[0] = "..."
    z = _zeta(alpha) if math.isfinite(alpha) and alpha > 1 else 1.0
    k = np.arange(1, len(words) + 1, dtype=np.float64)
    head_t, tail_t = spec["template"].split("{context}")

    def build(num_words: int) -> str:
        reps = (num_words * k**-alpha / z).astype(np.int64)
        seq = [w for w, r in zip(words, reps.tolist(), strict=True) for _ in range(r)]
        random.Random(seed).shuffle(seq)
        return head_t + " ".join(seq) + tail_t + spec["answer_prefix"]

    text, tokens, n = fit_count(
        build, counter, budget, tolerance_for(length), max(budget // wordlen, 10)
    )
    text = text[: len(text) - len(spec["answer_prefix"])]
    return Sample(
        task=task,
        length=length,
        index=index,
        seed=seed,
        input=text,
        answer_prefix=spec["answer_prefix"],
        outputs=words[1:4],
        metric="string_match_all",
        max_new_tokens=spec["tokens_to_generate"],
        tokens=tokens + spec["tokens_to_generate"],
        counter=counter.name,
        query="most frequent coded words",
        context_span=(len(head_t), len(text) - len(tail_t)),
        meta={"num_words": n, "alpha": alpha},
    ).with_id()
