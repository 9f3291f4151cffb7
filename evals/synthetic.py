"""RULER's non-retrieval synthetic tasks: variable tracking (vt), common words (cwe), and
frequent coded words (fwe)."""

from __future__ import annotations

import math
import random
import string
from typing import Any

import numpy as np
from engram_sdk.evals.haystacks import NoiseHaystack
from engram_sdk.evals.length import TokenCounter, fit_count, fit_units, tolerance_for
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.taskconfig import TaskConfig
from engram_sdk.evals.words import common_words, key_word


def _chains(
    rng: random.Random, num_chains: int, num_hops: int, name_len: int = 5, value: str | None = None
) -> tuple[list[list[str]], list[list[str]]]:
    """RULER's chains: ``VAR A = 12345`` then ``VAR B = VAR A`` … (``name_len`` letters)."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < num_chains * (num_hops + 1):
        v = "".join(rng.choices(string.ascii_uppercase, k=name_len))
        if v not in seen:
            seen.add(v)
            names.append(v)
    groups, chains = [], []
    for c in range(num_chains):
        vs = names[c * (num_hops + 1) : (c + 1) * (num_hops + 1)]
        first = value or str(rng.randint(10000, 99999))
        chain = [f"VAR {vs[0]} = {first}"] + [
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


VT_EXAMPLE_TOKENS = 500  # RULER fits its one worked example to 500 tokens


def _vt_example(config: TaskConfig, rng: random.Random, counter: TokenCounter, seed: int) -> str:
    """RULER's worked example: 3-letter names, its own value, fitted to 500 tokens, answered
    after the prefix with one more space and followed by a blank line."""
    num_chains, num_hops = config.params["num_chains"], min(10, config.params["num_hops"])
    groups, chains = _chains(rng, num_chains, num_hops, name_len=3)
    value = chains[0][0].split("=")[-1].strip()
    fractions = [[rng.random() for _ in c] for c in chains]
    prefix = config.answer_prefix.format(num_v=num_hops + 1, query=value)

    def build(units: list[str], counts: np.ndarray) -> str:
        context = _vt_text(chains, fractions, units)
        return config.template.format(context=context, query=value) + prefix

    fitted = fit_units(
        build,
        NoiseHaystack().units(seed),
        "\n",
        counter,
        VT_EXAMPLE_TOKENS,
        tolerance_for(VT_EXAMPLE_TOKENS),
    )
    return fitted.text + " " + " ".join(groups[0]) + "\n"


def variable_tracking(
    config: TaskConfig,
    length: int,
    index: int,
    seed: int,
    counter: TokenCounter,
) -> Sample:
    """Chains ``VAR ABCDE = 12345``, ``VAR FGHIJ = VAR ABCDE`` … hidden in noise, after RULER's
    worked example (inserted before the task, then a blank line)."""
    rng = random.Random(f"{config.name}|{length}|{seed}|{index}")
    num_chains, num_hops = config.params["num_chains"], config.params["num_hops"]
    example = _vt_example(config, rng, counter, seed)
    groups, chains = _chains(rng, num_chains, num_hops)
    value = chains[0][0].split("=")[-1].strip()
    fractions = [[rng.random() for _ in c] for c in chains]
    head_t, tail_t = config.head_and_tail
    head = example + "\n" + head_t
    tail = tail_t.format(query=value)
    prefix = config.answer_prefix.format(num_v=num_hops + 1, query=value)

    def build(units: list[str], counts: np.ndarray) -> str:
        return head + _vt_text(chains, fractions, units) + tail + prefix

    budget = length - config.tokens_to_generate
    noise = NoiseHaystack().units(seed)
    fitted = fit_units(build, noise, "\n", counter, budget, tolerance_for(length))
    text = fitted.text[: len(fitted.text) - len(prefix)]
    return config.sample(
        target_length=length,
        index=index,
        seed=seed,
        counter=counter,
        prompt_tokens=fitted.tokens,
        input=text,
        answer_prefix=prefix,
        outputs=groups[0],
        query=value,
        context_span=(len(head), len(text) - len(tail)),
        meta={"chains": chains, "n_units": fitted.n_units, "example": example},
    )


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
    config: TaskConfig,
    length: int,
    index: int,
    seed: int,
    counter: TokenCounter,
) -> Sample:
    """A numbered word list where ``num_cw`` words repeat ``freq_cw`` times, the rest ``freq_ucw``."""
    params, task = config.params, config.name
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

    head_t, tail_t = config.head_and_tail
    prefix = config.answer_prefix
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

    budget = length - config.tokens_to_generate
    n0 = max(num_cw + 1, budget // (4 * main_reps[1] + 1))
    text, tokens, n = fit_count(build, counter, budget, tolerance_for(length), n0, n_min=num_cw + 1)
    build(n)  # parts of the chosen size
    text = text[: len(text) - len(prefix)]
    return config.sample(
        target_length=length,
        index=index,
        seed=seed,
        counter=counter,
        prompt_tokens=tokens,
        input=text,
        answer_prefix=prefix,
        outputs=parts["answer"],
        query="most common words",
        context_span=(len(parts["head"]), len(text) - len(tail_t)),
        meta={"num_words": parts["n"]},
    )


def _zeta(alpha: float, terms: int = 100_000) -> float:
    k = np.arange(1, terms + 1, dtype=np.float64)
    return float(np.sum(k**-alpha) + terms ** (1 - alpha) / (alpha - 1))


def freq_words_extraction(
    config: TaskConfig,
    length: int,
    index: int,
    seed: int,
    counter: TokenCounter,
) -> Sample:
    """Zipf(alpha)-distributed 6-letter coded words; the answer is ranks 2–4 (rank 1 is '...')."""
    params, task = config.params, config.name
    alpha = float(params["alpha"])
    wordlen = params.get("coded_wordlen", 6)
    budget = length - config.tokens_to_generate
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
    head_t, tail_t = config.head_and_tail
    prefix = config.answer_prefix

    def build(num_words: int) -> str:
        reps = (num_words * k**-alpha / z).astype(np.int64)
        seq = [w for w, r in zip(words, reps.tolist(), strict=True) for _ in range(r)]
        random.Random(seed).shuffle(seq)
        return head_t + " ".join(seq) + tail_t + prefix

    text, tokens, n = fit_count(
        build, counter, budget, tolerance_for(length), max(budget // wordlen, 10)
    )
    text = text[: len(text) - len(prefix)]
    return config.sample(
        target_length=length,
        index=index,
        seed=seed,
        counter=counter,
        prompt_tokens=tokens,
        input=text,
        answer_prefix=prefix,
        outputs=words[1:4],
        query="most frequent coded words",
        context_span=(len(head_t), len(text) - len(tail_t)),
        meta={"num_words": n, "alpha": alpha},
    )
