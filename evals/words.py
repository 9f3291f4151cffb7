"""Word lists (from the ``wonderwords`` package, as RULER uses) and random keys/values."""

from __future__ import annotations

import functools
import random
import uuid
from importlib import resources

from engram_sdk.errors import InputError, MissingDependencyError

VALUE_KINDS = ("words", "numbers", "uuids")


@functools.cache
def _wordlist(name: str) -> tuple[str, ...]:
    try:
        text = resources.files("wonderwords").joinpath("assets", name).read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise MissingDependencyError(
            "word lists need the wonderwords package: pip install wonderwords"
        ) from exc
    return tuple(w.strip() for w in text.splitlines() if w.strip())


def nouns() -> tuple[str, ...]:
    """wonderwords' noun list."""
    return _wordlist("nounlist.txt")


def adjectives() -> tuple[str, ...]:
    """wonderwords' adjective list."""
    return _wordlist("adjectivelist.txt")


def verbs() -> tuple[str, ...]:
    """wonderwords' verb list."""
    return _wordlist("verblist.txt")


def key_word(rng: random.Random) -> str:
    """A RULER needle key: a uniformly drawn ``adjective-noun`` pair."""
    adjs, ns = adjectives(), nouns()
    return f"{adjs[rng.randrange(len(adjs))]}-{ns[rng.randrange(len(ns))]}"


@functools.cache
def common_words() -> tuple[str, ...]:
    """Nouns, adjectives and verbs, sorted and deduplicated (the cwe vocabulary)."""
    return tuple(sorted(set(nouns()) | set(adjectives()) | set(verbs())))


def random_value(kind: str, rng: random.Random) -> str:
    """A random key/value: an adjective-noun word, a 7-digit number or a UUID4 string."""
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))
    if kind == "words":
        return key_word(rng)
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    raise InputError(f"unknown needle kind {kind!r}; expected one of {VALUE_KINDS}")


def distinct_values(
    kind: str, n: int, rng: random.Random, exclude: set[str] | None = None
) -> list[str]:
    """``n`` different random values of ``kind``, none of them in ``exclude``."""
    seen = set(exclude or ())
    out: list[str] = []
    while len(out) < n:
        v = random_value(kind, rng)
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out
