"""Partial matches: passages holding some of a query's words, when fewer than ``k`` passages
hold the whole phrase.

Each word (``\\w{3,}`` of the folded query) brings its first candidates; a passage's bound
is the summed rarity (``log(1 + N / (1 + df))``) of the words whose candidates include it.
The best-bounded passages are checked, each word looked for in the text, and ranked by the
rarity of the words they hold. In a format 3 memory the check reads the fragments' bytes
(lowered once per fragment; a passage that is not plain through its folded text, kept by
the fragment), and only the ``need`` winners become hits.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from engram_sdk.memory import candidates
from engram_sdk.memory.bulk_verify import plain_hit
from engram_sdk.memory.fold import fold_fast, fold_query
from engram_sdk.memory.models import Hit
from engram_sdk.memory.passage_cache import loader_for
from engram_sdk.memory.text_store import Fragment, reader_of
from engram_sdk.memory.trigrams import query_trigrams
from engram_sdk.memory.verify import (
    Filters,
    Loaded,
    batches,
    from_fragments_of,
    make_hit,
    word_pattern,
)

if TYPE_CHECKING:
    from engram_sdk.memory.memory import Memory

PARTIAL_FACTOR = 2  # partial candidates read per missing hit, best word bound first
WORDS = word_pattern()


@functools.lru_cache(maxsize=4096)
def query_words(query: str) -> tuple[str, ...]:
    """The words of a query that score partial matches, folded, sorted, once each."""
    return tuple(sorted(set(WORDS.findall(fold_query(query)))))


def word_df(mem: Memory, sid: int, word: str, dfs: dict[str, int]) -> int:
    """:func:`candidates.document_frequency` of a word, remembered in ``dfs``."""
    if word not in dfs:
        dfs[word] = candidates.document_frequency(mem.index, sid, query_trigrams(word)[1])
    return dfs[word]


def partial_hits(
    mem: Memory,
    sid: int,
    query: str,
    need: int,
    exact_case: bool,
    filters: Filters,
    seen: set[int],
    dfs: dict[str, int],
) -> list[Hit]:
    """Up to ``need`` passages (not in ``seen``) holding some of the query's words, rarest
    words weighing most."""
    words = list(query_words(query))
    if len(words) < 2:
        return []
    n = max(mem.index.table(sid).passages, 1)
    want = PARTIAL_FACTOR * need + len(seen)
    per_word = {  # first windows: partial matches rank, they need not be complete
        w: candidates.first_candidates(mem.index, sid, query_trigrams(w)[1], want) for w in words
    }
    idf = {w: math.log(1 + n / (1 + word_df(mem, sid, w, dfs))) for w in words}
    pids = np.concatenate(list(per_word.values()))
    weights = np.repeat([idf[w] for w in words], [len(per_word[w]) for w in words])
    uniq, inv = _unique_inverse(pids)
    bound = np.bincount(inv, weights=weights)
    best = uniq[np.argsort(-bound, kind="stable")[: PARTIAL_FACTOR * need]]
    if mem.manifest.format_version >= 3 and not filters.active:
        in_fragments = _scored_in_fragments(mem, sid, best, query, exact_case, seen, idf)
        in_fragments.sort(key=_by_overlap)
        encoded = [w.encode("utf-8", "surrogatepass") for w in words]
        return [_fragment_hit(frag, i, words, encoded, s) for s, frag, i in in_fragments[:need]]
    scored = _scored(mem, sid, best, query, exact_case, filters, seen, idf)
    scored.sort(key=_by_overlap)
    return [make_hit(p, _first_word(p.text, words), s, False) for s, p in scored[:need]]


def _by_overlap(scored: tuple) -> float:
    return -scored[0]


def _fragment_hit(
    frag: Fragment, i: int, words: list[str], encoded: list[bytes], score: float
) -> Hit:
    """The partial hit of passage ``i`` of a fragment, at the first of ``words`` (UTF-8:
    ``encoded``) in it."""
    if i in frag.odd:
        p = next(from_fragments_of(frag, [i]))
        return make_hit(p, _first_word(p.text, words), score, False)
    start, end, low = frag.offsets[i], frag.offsets[i + 1], frag.lower
    found = [at for w in encoded if (at := low.find(w, start, end)) >= 0]
    return plain_hit(frag, i, min(found) if found else start, score, phrase=False)


def _scored(
    mem: Memory,
    sid: int,
    best: np.ndarray,
    query: str,
    exact_case: bool,
    filters: Filters,
    seen: set[int],
    idf: dict[str, float],
) -> list[tuple[float, Loaded]]:
    scored = []
    for p in batches(loader_for(mem, sid), best):
        if p.pid in seen or (filters.active and not filters.allows(p)):
            continue
        if exact_case and query not in p.text:
            continue
        folded = p.text.lower() if p.text.isascii() else fold_fast(p.text)  # words: no spaces
        overlap = sum(w_idf for w, w_idf in idf.items() if w in folded)
        if overlap:
            scored.append((overlap, p))
    return scored


def _scored_in_fragments(
    mem: Memory,
    sid: int,
    best: np.ndarray,
    query: str,
    exact_case: bool,
    seen: set[int],
    idf: dict[str, float],
) -> list[tuple[float, Fragment, int]]:
    """:func:`_scored` on fragment bytes: (score, fragment, position) of the passages that
    score."""
    index = mem.index
    reader = reader_of(index)
    exact = query.encode("utf-8", "surrogatepass")
    encoded = [(w.encode("utf-8", "surrogatepass"), w, w_idf) for w, w_idf in idf.items()]
    scored = []
    for frag, run in reader.fragments(mem.store, sid, index.generation(sid), best.tolist()):
        for i in run:
            if frag.pids[i] in seen:
                continue
            start, end = frag.offsets[i], frag.offsets[i + 1]
            if exact_case and frag.text.find(exact, start, end) < 0:
                continue
            overlap = _overlap(frag, i, start, end, encoded)
            if overlap:
                scored.append((overlap, frag, i))
    return scored


def _overlap(
    frag: Fragment, i: int, start: int, end: int, words: list[tuple[bytes, str, float]]
) -> float:
    if i in frag.odd:
        folded = frag.folded(i)
        return sum(w_idf for _, w, w_idf in words if w in folded)
    low = frag.lower
    return sum(w_idf for b, _, w_idf in words if low.find(b, start, end) >= 0)


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` without importing ``numpy.ma``."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.ones(len(ordered), bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(values), np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def _first_word(text: str, words: list[str]) -> int:
    lowered = text.lower()
    found = [at for w in words if (at := lowered.find(w)) >= 0]
    return min(found) if found else 0
