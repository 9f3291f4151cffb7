"""Query the memory: N-gram lookups → candidates → verification against stored text → ranking."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_sdk.errors import InputError
from engram_sdk.memory.fold import fold_fast
from engram_sdk.memory.models import Context, Hit, Passage

if TYPE_CHECKING:
    from engram_sdk.memory.memory import Memory
    from engram_sdk.tokenizer import Tokenizer

FREQUENT = 50_000  # postings above this only score, they don't generate candidates
PARTIAL_CANDIDATES = 200


def search(
    mem: Memory, query: str, k: int, scope: str, exact_case: bool, sources: Sequence[str] | None
) -> list[Hit]:
    """See :meth:`Memory.search`."""
    if not isinstance(query, str) or not query.strip():
        raise InputError("query must be a non-empty string")
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    sid = mem.scope_id(scope)
    if sid is None:
        return []
    # a word at the start of the query is tokenized without the space it has in running
    # text; both forms are looked up and verification against the text decides
    variants = [query] if query[:1].isspace() else [query, " " + query]
    variant_fps = [f for f in mem.fingerprint_sets(variants) if len(f)]
    folded_q = fold_fast(query).strip()
    allowed = set(sources) if sources is not None else None
    if not variant_fps:
        return _scan_fallback(mem, sid, query, folded_q, k, exact_case, allowed)
    q_fps = np.unique(np.concatenate(variant_fps))
    postings = mem.index.lookup(sid, q_fps.tolist())
    n_passages = max(mem.manifest.next_pid, 1)
    idf = {fp: math.log(1 + n_passages / (1 + len(p))) for fp, p in postings.items()}
    full_sets, scored = [], []
    for fps in variant_fps:
        present = [int(fp) for fp in fps if len(postings[int(fp)])]
        usable = [fp for fp in present if len(postings[fp]) <= FREQUENT] or present
        if not usable:
            continue
        pids = np.concatenate([postings[fp] for fp in usable])
        weights = np.concatenate([np.full(len(postings[fp]), idf[fp]) for fp in usable])
        uniq, inv = np.unique(pids, return_inverse=True)
        score = np.bincount(inv, weights=weights)
        if len(present) == len(fps):
            full_sets.append(uniq[np.bincount(inv) == len(usable)])
        scored.append(uniq[np.argsort(-score, kind="stable")[: max(PARTIAL_CANDIDATES, 4 * k)]])
    if not scored:
        return []
    candidates = np.unique(np.concatenate(full_sets + scored))
    return _verify_and_rank(
        mem, sid, query, folded_q, variant_fps, idf, candidates, k, exact_case, allowed
    )


def _verify_and_rank(
    mem: Memory,
    sid: int,
    query: str,
    folded_q: str,
    variant_fps: list[np.ndarray],
    idf: dict[int, float],
    candidates: np.ndarray,
    k: int,
    exact_case: bool,
    allowed: set[str] | None,
) -> list[Hit]:
    passages = [
        p
        for p in mem.passages(sid, candidates.tolist())
        if p is not None and (allowed is None or p.source in allowed)
    ]
    if not passages:
        return []
    q_sets = [set(f.tolist()) for f in variant_fps]
    total_idf = max(sum(idf[fp] for fp in q) for q in q_sets)
    hits = []
    for p, fps in zip(passages, mem.fingerprint_sets([p.text for p in passages]), strict=True):
        own = set(fps.tolist())  # recomputed from the text: a collision never makes a hit
        overlap = max(sum(idf[fp] for fp in q & own) for q in q_sets)
        phrase = folded_q in fold_fast(p.text)
        exact = query in p.text
        if exact_case and not exact:
            continue
        if not overlap and not phrase:
            continue
        score = overlap + (2 * total_idf if phrase else 0) + (0.25 * total_idf if exact else 0)
        hits.append(_hit(p, score, phrase, folded_q, query))
    hits.sort(key=lambda h: (-h.score, h.source, h.line_start))
    return hits[:k]


def _hit(p: Passage, score: float, phrase: bool, folded_q: str, query: str) -> Hit:
    lines = p.text.splitlines()
    best = 0
    if phrase:
        best = next((i for i, line in enumerate(lines) if folded_q in fold_fast(line)), 0)
    else:
        words = set(fold_fast(query).split())
        best = max(
            range(len(lines)), key=lambda i: sum(w in fold_fast(lines[i]) for w in words), default=0
        )
    snippet = lines[best].strip()[:200] if lines else ""
    return Hit(
        source=p.source,
        line_start=p.line_start + best,
        line_end=p.line_start + best,
        score=round(score, 4),
        snippet=snippet,
        passage_id=p.pid,
        phrase_match=phrase,
        scope=p.scope,
    )


def _scan_fallback(
    mem: Memory,
    sid: int,
    query: str,
    folded_q: str,
    k: int,
    exact_case: bool,
    allowed: set[str] | None,
) -> list[Hit]:
    """Queries shorter than one N-gram: a linear scan of the scope's passages."""
    from engram_sdk.memory.memory import PASSAGES

    hits = []
    for _, raw in mem.store.scan(PASSAGES, sid.to_bytes(4, "big")):
        p = Passage.model_validate_json(raw)
        if allowed is not None and p.source not in allowed:
            continue
        if (query in p.text) if exact_case else (folded_q in fold_fast(p.text)):
            hits.append(_hit(p, 1.0 + (query in p.text), True, folded_q, query))
    hits.sort(key=lambda h: (-h.score, h.source, h.line_start))
    return hits[:k]


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
            if not parts:  # the best passage alone is too long: keep its head
                ids = tokenizer.encode(block)[:max_tokens]
                parts.append(tokenizer.decode(ids))
                used.append(hit)
                total = len(ids)
            break
        parts.append(block)
        used.append(hit)
        total += n
    text = "\n".join(parts)
    return Context(query=query, text=text, tokens=tokenizer.count(text), passages=used)
