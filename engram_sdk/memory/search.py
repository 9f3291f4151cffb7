"""Query the memory: trigram candidates → verification against stored text → ranking.

Substring queries (folded by default, ``exact_case`` on request) are complete: candidates
come from the trigram index (:mod:`engram_sdk.memory.candidates`) and every one is checked
against the passage text, so ``k=None`` lists every matching passage. With ``k`` set,
verification stops once ``k`` exact-case matches (the best possible score) are in. When fewer
than ``k`` passages hold the phrase, passages holding some of the query's words follow,
scored by the words' rarity (``log(1 + N / (1 + df))``), each word checked in the text.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from engram_sdk.errors import InputError
from engram_sdk.memory import candidates
from engram_sdk.memory.bulk_verify import BytesQuery, every_hit, top_hits
from engram_sdk.memory.index import member
from engram_sdk.memory.models import Context, Hit
from engram_sdk.memory.partial import partial_hits, query_words, word_df
from engram_sdk.memory.passage_cache import loader_for
from engram_sdk.memory.regex import compile_pattern, requirement
from engram_sdk.memory.source_map import first_per_source, verify_per_source
from engram_sdk.memory.text_store import Fragment, reader_of
from engram_sdk.memory.trigrams import prefix_range, query_trigrams, sorted_unique
from engram_sdk.memory.verify import (
    Filters,
    Loaded,
    Locator,
    batches,
    make_hit,
    regex_locator,
    scan,
    substring_locator,
)

if TYPE_CHECKING:
    from engram_sdk.memory.memory import Memory
    from engram_sdk.tokenizer import Tokenizer

_BY_PLACE = operator.attrgetter("source", "line_start")
_BY_SCORE = operator.attrgetter("score")
EXTRA_CHECKS = 64  # top-k: candidates read past k folded hits while looking for exact-case ones


def search(
    mem: Memory,
    query: str,
    *,
    k: int | None,
    scope: str,
    exact_case: bool = False,
    sources: Sequence[str] | None = None,
    path_glob: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    regex: bool = False,
    one_per_source: bool = False,
    match: str = "phrase",
) -> list[Hit]:
    """See :meth:`Memory.search`; ``k=None`` returns every match."""
    if not isinstance(query, str) or not query.strip():
        raise InputError("query must be a non-empty string")
    if k is not None and k < 1:
        raise InputError(f"k must be >= 1 (or 'all'), got {k}")
    filters = Filters(
        frozenset(sources) if sources is not None else None, path_glob, metadata or None
    )
    sid = mem.scope_id(scope)
    if sid is None:
        return []
    mem.index.refresh(sid)
    if one_per_source:  # hits from sources already hit are skipped
        filters = replace(filters, distinct=set())
    if k is None and one_per_source:
        hits = _every_source(mem, sid, query, exact_case, filters, regex)
    elif regex:
        hits = _regex_hits(mem, sid, query, k, exact_case, filters)
    else:
        dfs: dict[str, int] = {}  # word -> document frequency bound, once per search
        found: list[Hit] | None = None
        by_words: list[Hit] | None = None
        if k is not None and match == "words" and len(query_words(query)) > 1:
            # the ranking by words alone: what follows the phrase hits when there are none.
            # It reads only each word's first candidates, so when those give fewer than k
            # hits, the (complete) phrase search answers instead
            by_words = partial_hits(mem, sid, query, k, exact_case, filters, set(), dfs)
            found = by_words if len(by_words) >= k else None
        if found is None:
            hits, ranked = _phrase_hits(mem, sid, query, k, exact_case, filters, dfs)
            if k is not None and len(hits) < k:
                if not hits and by_words is not None:
                    hits, ranked = by_words, False  # what the same call below would return
                else:
                    seen = {h.passage_id for h in hits}
                    need = k - len(hits)
                    more = partial_hits(mem, sid, query, need, exact_case, filters, seen, dfs)
                    hits += more
                    ranked = ranked and not more
            if ranked and not one_per_source:
                return hits  # (top-k on fragments returns its best k in this order already)
        else:
            hits = found
    if one_per_source:
        hits = first_per_source(hits)
    return _ranked(hits, k)


def _ranked(hits: list[Hit], k: int | None) -> list[Hit]:
    """Highest score first, then by place; the first ``k``."""
    hits.sort(key=_BY_PLACE)  # then by score, highest first: a stable sort keeps the places
    hits.sort(key=_BY_SCORE, reverse=True)
    return hits if k is None else hits[:k]


def _phrase_passages(
    mem: Memory, sid: int, query: str, k: int | None
) -> tuple[Iterator[Loaded], bool, int]:
    """Candidate passages in the order they are verified, whether they hold every match
    (else the caller retries with every candidate when fewer than ``k`` verify), and how
    many candidates there are (or a bound). Top-k reads them window by window
    (:func:`candidates.windows`): complete, and it stops reading when verification stops."""
    folded, tris = query_trigrams(query)
    if k is None:
        ids = _phrase_ids(mem, sid, query)
        return batches(loader_for(mem, sid, keep=False), ids, every=True), True, len(ids)
    if len(tris):
        stream = candidates.windows(mem.index, sid, tris)
        loader = loader_for(mem, sid)
        passages = (p for ids in stream for p in batches(loader, ids))
        return passages, True, candidates.document_frequency(mem.index, sid, tris)
    lo, hi = prefix_range(folded)
    enough = 4 * k + EXTRA_CHECKS if k is not None else None
    ids = candidates.any_starting(mem.index, sid, lo, hi, enough=enough)
    return batches(loader_for(mem, sid), ids, every=k is None), enough is None, len(ids)


def _every_source(
    mem: Memory, sid: int, query: str, exact_case: bool, filters: Filters, regex: bool
) -> list[Hit]:
    """``k="all"``, one hit per source: the first matching passage of every source."""
    if regex:
        locate = regex_locator(compile_pattern(query, exact_case=exact_case))
        folded_at = exact_at = locate
        ids = _requirement_ids(mem, sid, requirement(query))
        if ids is None:  # nothing to look up: every passage is a candidate
            passages = _scan(mem, sid)
            return first_per_source(_verify_every(True, filters, locate, locate, 1.0, passages))
        score, exact_case = 1.0, True
    else:
        ids = _phrase_ids(mem, sid, query)
        score = 3 * _weight(mem, sid, query, len(ids), {})
        folded_at = substring_locator(query, exact_case=False)
        exact_at = substring_locator(query, exact_case=True)

    def check(p: Loaded) -> Hit | None:
        hit = _verify_every(exact_case, filters, folded_at, exact_at, score, [p])
        return hit[0] if hit else None

    allowed = filters.allows_source if filters.sources is not None or filters.path_glob else None
    loader = loader_for(mem, sid, keep=False)
    return verify_per_source(mem.store, mem.index, sid, ids, check, loader, allowed)


def _phrase_ids(mem: Memory, sid: int, query: str) -> np.ndarray:
    """Every candidate of a substring query (sorted ids): a superset of its matches."""
    folded, tris = query_trigrams(query)
    if len(tris):
        return candidates.all_of(mem.index, sid, tris)
    return candidates.any_starting(mem.index, sid, *prefix_range(folded))


def _phrase_hits(
    mem: Memory,
    sid: int,
    query: str,
    k: int | None,
    exact_case: bool,
    filters: Filters,
    dfs: dict[str, int],
) -> tuple[list[Hit], bool]:
    """Passages holding the phrase, and whether they are ranked already (at most ``k``, by
    score, then source and line, as :func:`search` orders them)."""
    if mem.manifest.format_version >= 3 and not filters.active:
        found = _fragment_phrase_hits(mem, sid, query, k, exact_case, dfs)
        if found is not None:
            return found, k is not None
    folded_at = substring_locator(query, exact_case=False)
    exact_at = substring_locator(query, exact_case=True)
    passages, complete, count = _phrase_passages(mem, sid, query, k)
    score = 3 * _weight(mem, sid, query, count, dfs)
    hits = _verify(mem, sid, k, exact_case, filters, folded_at, exact_at, score, passages)
    if not complete and k is not None and len(hits) < k:  # the sample was not enough
        passages, _, _ = _phrase_passages(mem, sid, query, None)
        hits = _verify(mem, sid, k, exact_case, filters, folded_at, exact_at, score, passages)
    return hits, False


def _fragment_phrase_hits(
    mem: Memory, sid: int, query: str, k: int | None, exact_case: bool, dfs: dict[str, int]
) -> list[Hit] | None:
    """Format 3 without filters: candidates verified on their fragments' bytes
    (:mod:`engram_sdk.memory.bulk_verify`); None for a top-k query of one or two bytes
    (the general path samples those)."""
    tris = query_trigrams(query)[1]
    if k is not None and not len(tris):
        return None
    index = mem.index
    reader, generation = reader_of(index), index.generation(sid)
    store = mem.store

    def runs(ids: np.ndarray) -> Iterator[tuple[Fragment, list[int]]]:
        return reader.fragments(store, sid, generation, ids.tolist())

    if k is None:
        folded_at = substring_locator(query, exact_case=False)
        exact_at = substring_locator(query, exact_case=True)
        ids = _phrase_ids(mem, sid, query)
        score = 3 * _weight(mem, sid, query, len(ids), dfs)

        def general(ps: list[Loaded]) -> list[Hit]:
            return _verify_every(exact_case, Filters(), folded_at, exact_at, score, ps)

        return every_hit(
            runs(ids), BytesQuery(query), exact_case=exact_case, score=score, fallback=general
        )
    score = 3 * _weight(mem, sid, query, candidates.document_frequency(index, sid, tris), dfs)
    locators: list[Locator] = []  # made on first use: most searches verify plain passages only

    def check(p: Loaded) -> tuple[Hit, bool] | None:
        if not locators:
            locators.append(substring_locator(query, exact_case=True))
            locators.append(substring_locator(query, exact_case=False))
        at = locators[0](p.text)
        exact = at >= 0
        if not exact and (exact_case or (at := locators[1](p.text)) < 0):
            return None
        return make_hit(p, at, score + (0.25 * score if exact else 0.0), True), exact

    stream = (r for ids in candidates.windows(index, sid, tris) if len(ids) for r in runs(ids))
    return top_hits(
        stream,
        BytesQuery.of(query),
        k,
        extra=EXTRA_CHECKS,
        exact_case=exact_case,
        score=score,
        check=check,
    )


def _verify(
    mem: Memory,
    sid: int,
    k: int | None,
    exact_case: bool,
    filters: Filters,
    folded_at: Locator,
    exact_at: Locator,
    score: float,
    passages: Iterable[Loaded],
) -> list[Hit]:
    """Hits among candidates; with ``k``, stops at ``k`` exact-case hits, or a little past
    ``k`` folded ones."""
    if k is None:
        return _verify_every(exact_case, filters, folded_at, exact_at, score, passages)
    hits: list[Hit] = []
    exact_hits = checked_after = 0
    for p in passages:
        if k is not None and (exact_hits >= k or (len(hits) >= k and checked_after > EXTRA_CHECKS)):
            break
        checked_after += len(hits) >= (k or 0)
        if filters.active and not filters.allows(p):
            continue
        at = exact_at(p.text)
        exact = at >= 0
        if not exact and (exact_case or (at := folded_at(p.text)) < 0):
            continue
        exact_hits += exact
        hits.append(filters.note(make_hit(p, at, score + (0.25 * score if exact else 0.0), True)))
    return hits


def _verify_every(
    exact_case: bool,
    filters: Filters,
    folded_at: Locator,
    exact_at: Locator,
    score: float,
    passages: Iterable[Loaded],
) -> list[Hit]:
    """:func:`_verify` for ``k="all"``: every candidate checked, nothing to stop at."""
    hits: list[Hit] = []
    exact_score, folded_score = score + 0.25 * score, score
    filtered = filters.active
    for p in passages:
        if filtered and not filters.allows(p):
            continue
        text = p.text
        at = exact_at(text)
        if at >= 0:
            hits.append(filters.note(make_hit(p, at, exact_score, True)))
        elif not exact_case and (at := folded_at(text)) >= 0:
            hits.append(filters.note(make_hit(p, at, folded_score, True)))
    return hits


def _weight(mem: Memory, sid: int, query: str, candidates_found: int, dfs: dict[str, int]) -> float:
    """Sum of the rarity of the query's words (an upper bound on a partial match's score)."""
    n = max(mem.index.table(sid).passages, 1)
    words = query_words(query)
    if len(words) <= 1:  # the phrase is the word: its candidates give its frequency
        return math.log(1 + n / (1 + candidates_found))
    total = 0.0
    for word in words:
        total += math.log(1 + n / (1 + word_df(mem, sid, word, dfs)))
    return total or 1.0


def _regex_hits(
    mem: Memory, sid: int, pattern: str, k: int | None, exact_case: bool, filters: Filters
) -> list[Hit]:
    matcher = compile_pattern(pattern, exact_case=exact_case)
    locate = regex_locator(matcher)
    req = requirement(pattern)
    ids = _requirement_ids(mem, sid, req)
    every = k is None
    loader = loader_for(mem, sid, keep=not every)
    passages = _scan(mem, sid) if ids is None else batches(loader, ids, every=every)
    return _verify(mem, sid, k, True, filters, locate, locate, 1.0, passages)


def _scan(mem: Memory, sid: int) -> Iterator[Loaded]:
    """Every passage of a scope, for a regex with nothing to look up."""
    return scan(mem.store, sid, fragments=mem.manifest.format_version >= 3)


def _requirement_ids(mem: Memory, sid: int, req: Any) -> np.ndarray | None:
    """Candidate ids of a regex requirement; None when it constrains nothing (scan)."""
    if req.empty:
        return None
    sets: list[np.ndarray] = [candidates.all_of(mem.index, sid, t) for t in req.all_of]
    for alts in req.any_of:
        alt_ids = [_requirement_ids(mem, sid, a) for a in alts]
        if any(a is None for a in alt_ids):
            continue
        sets.append(sorted_unique(np.concatenate(alt_ids)))  # type: ignore[arg-type]
    if not sets:
        return None
    ids = sets[0]
    for other in sets[1:]:
        ids = ids[member(ids, other)]
    return ids


def assemble_context(
    mem: Memory, query: str, max_tokens: int, scope: str, tokenizer: Tokenizer, k: int
) -> Context:
    """See :meth:`Memory.context`."""
    if max_tokens < 1:
        raise InputError(f"max_tokens must be >= 1, got {max_tokens}")
    hits = mem.search(query, k=k, scope=scope)
    sid = mem.scope_id(scope)
    parts: list[str] = []
    used: list[Hit] = []
    total = 0
    texts = mem.passages(sid, [h.passage_id for h in hits]) if hits and sid is not None else []
    for hit, passage in zip(hits, texts, strict=True):
        if passage is None:
            continue
        block = (
            f"[{passage.source}:{passage.line_start}-{passage.line_end}]\n{passage.text.rstrip()}\n"
        )
        n = tokenizer.count(block)
        if total + n > max_tokens:
            if not parts:  # the best passage alone is too long: keep a window around the match
                ids = tokenizer.encode(block)
                at = block.find(hit.snippet) if hit.snippet else -1
                centre = len(tokenizer.encode(block[:at])) if at > 0 else 0
                lo = max(0, min(centre - max_tokens // 2, len(ids) - max_tokens))
                parts.append(tokenizer.decode(ids[lo : lo + max_tokens]))
                used.append(hit)
                total = min(max_tokens, len(ids))
            break
        parts.append(block)
        used.append(hit)
        total += n
    text = "\n".join(parts)
    return Context(query=query, text=text, tokens=tokenizer.count(text), passages=used)
