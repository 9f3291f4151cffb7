"""Token counters and the length fitter.

RULER grows the haystack until ``tokens(prompt) + tokens_to_generate`` reaches the target
length, re-tokenizing the whole prompt at every binary-search step. Here every haystack
unit is tokenized once (``unit + joiner``), prefix sums of those counts predict the prompt
length for any number of units, and the full prompt is tokenized only to confirm (usually
once or twice). Result: ``length - tolerance <= tokens(prompt) + tokens_to_generate <= length``
with ``tolerance = max(64, length // 100)`` (1%); QA tasks add whole documents, so
they may end up to one document (~100–200 tokens) further below.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engram_sdk.errors import InputError, MissingDependencyError


class TokenCounter(Protocol):
    """Counts tokens the way the model under test sees them."""

    name: str

    def count(self, text: str) -> int: ...

    def count_batch(self, texts: Sequence[str]) -> list[int]: ...


_SAFE_SPLIT = re.compile(r"(?<=\S) (?=[^\W\d_])")  # before " word": a pre-token boundary
PARALLEL_CHARS = 1 << 18


def split_for_counting(text: str, parts: int) -> list[str]:
    """``text`` cut into about ``parts`` pieces, each cut just before a space that starts a
    word (after a non-space): tiktoken's pre-tokenizer splits there too, so the pieces'
    token counts add up to the whole text's."""
    cuts = [0]
    step = len(text) // parts
    for k in range(1, parts):
        m = _SAFE_SPLIT.search(text, max(k * step, cuts[-1] + 1))
        if m is None:
            break
        cuts.append(m.start())
    cuts.append(len(text))
    return [text[a:b] for a, b in itertools.pairwise(cuts) if b > a]


class TiktokenCounter:
    """Counts with a tiktoken encoding (default ``cl100k_base``, offline); texts over 256K
    characters are cut at pre-token boundaries and counted on several threads."""

    def __init__(self, encoding: str = "cl100k_base", threads: int = 0) -> None:
        from engram_sdk.tokenizer import get_tokenizer

        tok = get_tokenizer(encoding)
        self._encoding = tok.encoding
        self._encode = tok.encoding.encode_ordinary  # special-token text counts as plain text
        self.threads = threads or min(8, os.cpu_count() or 1)
        self.name = f"tiktoken:{tok.name}"

    def count(self, text: str) -> int:
        if len(text) < PARALLEL_CHARS or self.threads < 2:
            return len(self._encode(text))
        pieces = split_for_counting(text, self.threads * 2)
        encoded = self._encoding.encode_ordinary_batch(pieces, num_threads=self.threads)
        return sum(len(ids) for ids in encoded)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        # one call per text: cheaper than a thread pool's per-item overhead for short units
        enc = self._encode
        return [len(enc(t)) for t in texts]


class HFCounter:
    """Counts with a Hugging Face tokenizer (no special tokens added)."""

    def __init__(self, tokenizer: object, name: str = "hf") -> None:
        self._tok = tokenizer
        self.name = f"hf:{name}"

    def count(self, text: str) -> int:
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(x) for x in self._tok(list(texts), add_special_tokens=False)["input_ids"]]


class ReservingCounter:
    """Adds ``reserve`` tokens to every full-prompt count: the tokens a model's chat template
    wraps around the prompt (RULER's ``model_template_token``), so that template + prompt +
    generation fit the target length."""

    def __init__(self, inner: TokenCounter, reserve: int) -> None:
        self.inner, self.reserve = inner, int(reserve)
        self.name = inner.name

    def count(self, text: str) -> int:
        return self.inner.count(text) + self.reserve

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_batch(texts)


def get_counter(spec: str = "cl100k_base") -> TokenCounter:
    """``cl100k_base`` (or another tiktoken encoding name) or ``hf:<path or id>``."""
    if spec.startswith("hf:"):
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                "hf tokenizers need transformers: pip install 'engram-sdk[hf]'"
            ) from exc
        return HFCounter(AutoTokenizer.from_pretrained(spec[3:]), spec[3:])
    return TiktokenCounter(spec.removeprefix("tiktoken:"))


def tolerance_for(length: int) -> int:
    """How far below ``length`` a fitted sample may end: 1% of it, at least 64 tokens
    (QA tasks may end up to one document further below, as RULER adds whole documents)."""
    return max(64, length // 100)


@dataclass
class Fitted:
    """A prompt fitted to a token budget."""

    text: str
    tokens: int  # exact token count of ``text``
    n_units: int


Builder = Callable[[list[str], np.ndarray], str]


def fit_units(
    build: Builder,
    units: Iterator[str],
    joiner: str,
    counter: TokenCounter,
    budget: int,
    tolerance: int,
    min_units: int = 0,
    block: int | None = None,
    *,
    known_counts: Iterator[int] | None = None,
) -> Fitted:
    """Largest prompt ``build(units[:n], counts[:n])`` whose token count is ``<= budget``.

    ``build`` gets the first ``n`` haystack units and their token counts (``unit + joiner``)
    and returns the whole prompt. ``units`` is consumed lazily, in growing batches. A unit
    is counted with its joiner on the side where tiktoken-style pre-tokenizers merge it
    (a space joins the next word, a newline the previous punctuation), so predictions are
    nearly exact and the full prompt is usually tokenized once.

    ``block`` units are tokenized together (one call per block instead of one per unit; the
    block's exact count is shared out over its units by length). Default: 1 below 64K
    tokens, 32 above, where a block is a few hundred tokens of a million.

    ``known_counts``: each unit's count (``unit + joiner``, in the order of ``units``) when
    the caller knows them (:mod:`engram_sdk.evals.essay_counts`); nothing is tokenized then
    but the whole prompt, to confirm.
    """
    if block is None:
        block = 1 if budget < 65536 else 32
    if budget <= 0:
        raise InputError(f"token budget must be positive, got {budget}")
    base = counter.count(build([], np.zeros(0, dtype=np.int64)))
    if base > budget:
        raise InputError(
            f"the prompt without any haystack already has {base} tokens, more than the "
            f"budget of {budget}: ask for a longer length"
        )
    pulled: list[str] = []
    counts: list[int] = []
    total = 0
    batch = 64
    while base + total < budget + tolerance:  # a little spare for the correction steps
        chunk = list(itertools.islice(units, batch))
        if not chunk:
            break
        if known_counts is None:
            cs = _count_units(counter, chunk, joiner, block)
        else:
            cs = list(itertools.islice(known_counts, len(chunk)))
        pulled.extend(chunk)
        counts.extend(cs)
        total += sum(cs)
        batch = min(batch * 2, 65536)
        if known_counts is not None and total:  # no counting cost: pull what is needed
            missing = budget + tolerance - base - total
            batch = max(64, int(missing * 1.05 * len(pulled) / total) + 64)
    arr = np.asarray(counts, dtype=np.int64)
    prefix = np.concatenate([[0], np.cumsum(arr)])

    def predict_n(target: int) -> int:  # most units whose predicted total is <= target
        return max(min_units, int(np.searchsorted(prefix, target - base, side="right")) - 1)

    n = predict_n(budget)
    lo_bad = len(pulled) + 1  # smallest n known to exceed the budget
    best: Fitted | None = None
    for _ in range(12):
        text = build(pulled[:n], arr[:n])
        t = counter.count(text)
        if t <= budget:
            if best is None or t > best.tokens:
                best = Fitted(text, t, n)
            if budget - t <= tolerance or n + 1 >= lo_bad or n >= len(pulled):
                break
            step = predict_n(prefix[n] + base + (budget - t)) - n
            n = min(n + max(step, 1), lo_bad - 1, len(pulled))
        else:
            lo_bad = min(lo_bad, n)
            if n <= min_units:
                raise InputError(f"cannot fit the prompt into {budget} tokens")
            step = n - predict_n(prefix[n] + base - (t - budget))
            n = max(n - max(step, 1), min_units)
    if best is None:
        raise InputError(f"cannot fit the prompt into {budget} tokens")
    return best


def _count_units(counter: TokenCounter, units: list[str], joiner: str, block: int) -> list[int]:
    """Token counts of ``units`` (each with its joiner); blocks of ``block`` units are counted
    in one call and their count shared out by character length (sums stay exact)."""
    glued = [joiner + u if joiner == " " else u + joiner for u in units]
    if block <= 1:
        return counter.count_batch(glued)
    starts = range(0, len(glued), block)
    totals = np.asarray(counter.count_batch(["".join(glued[i : i + block]) for i in starts]))
    lengths = np.fromiter(map(len, glued), dtype=np.int64, count=len(glued))
    which = np.arange(len(glued)) // block  # each unit's block
    running = np.cumsum(lengths)
    before = np.concatenate([[0], running])[np.asarray(starts)]  # characters before each block
    chars = running - before[which]  # characters up to each unit, inside its block
    ends = np.minimum(np.asarray(starts) + block, len(glued)) - 1
    block_chars = np.maximum(chars[ends], 1)
    cut = np.floor(chars * totals[which] / block_chars[which]).astype(np.int64)
    first = np.zeros(len(glued), dtype=bool)
    first[np.asarray(starts)] = True
    return np.where(first, cut, cut - np.concatenate([[0], cut[:-1]])).tolist()


def fit_count(
    build: Callable[[int], str],
    counter: TokenCounter,
    budget: int,
    tolerance: int,
    n0: int,
    n_min: int = 1,
) -> tuple[str, int, int]:
    """Largest ``n`` with ``tokens(build(n)) <= budget``, by secant guesses inside a bracket.

    For tasks whose text is not a sequence of independent units (numbered word lists,
    Zipf-sampled coded words, document sets). Returns ``(text, tokens, n)``.
    """
    best: tuple[int, str, int] | None = None
    hi: int | None = None  # smallest n known to exceed the budget
    n = max(n0, n_min)
    for _ in range(40):
        text = build(n)
        t = counter.count(text)
        if t <= budget:
            if best is None or n > best[0]:
                best = (n, text, t)
            if budget - t <= tolerance:
                break
        else:
            hi = n if hi is None else min(hi, n)
            if n <= n_min:
                break
        lo_n = best[0] if best is not None else n_min - 1
        if hi is not None and hi - lo_n <= 1:
            break
        guess = int(n * (budget - tolerance / 2) / max(t, 1))
        upper = hi if hi is not None else 1 << 62
        if not lo_n < guess < upper:
            guess = (lo_n + hi) // 2 if hi is not None else max(2 * lo_n, lo_n + 1)
        n = max(guess, n_min)
    if best is None:
        raise InputError(f"cannot fit the prompt into {budget} tokens")
    return best[1], best[2], best[0]
