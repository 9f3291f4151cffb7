"""Query the memory: N-gram lookups → candidates → verification against stored text → ranking."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_sdk.errors import InputError
from engram_sdk.memory.fold import fold_fast
from engram_sdk.memory.models import Context, Hit, Passage, decode_passage

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
    postings = mem.index.lookup(sid, mem.manifest.segments.get(scope, []), q_fps.tolist())
    n_passages = max(mem.manifest.next_pid, 1)
    idf = {fp: math.log(1 + n_passages / (1 + len(p))) for fp, p in postings.items()}
    full_sets, partial_sets, bounds = [], [], {}
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
        top = np.argsort(-score, kind="stable")[: max(PARTIAL_CANDIDATES, 4 * k)]
        partial_sets.append(uniq[top])
        for pid, sc in zip(uniq[top].tolist(), score[top].tolist(), strict=True):
            bounds[pid] = max(bounds.get(pid, 0.0), sc)
    if not partial_sets:
        return []
    full = np.unique(np.concatenate(full_sets)) if full_sets else np.zeros(0, np.uint32)
    total_idf = max(sum(idf[int(fp)] for fp in f) for f in variant_fps)
    hits = _phrase_hits(mem, sid, query, folded_q, full, total_idf, exact_case, allowed, enough=k)
    if len(hits) < k:
        seen = {h.passage_id for h in hits}
        rest = sorted((p for p in bounds if p not in seen), key=lambda p: -bounds[p])
        hits += _partial_hits(
            mem, sid, query, folded_q, variants, idf, rest, k - len(hits), exact_case, allowed
        )
    hits.sort(key=lambda h: (-h.score, h.source, h.line_start))
    return hits[:k]


def _phrase_hits(
    mem: Memory,
    sid: int,
    query: str,
    folded_q: str,
    candidates: np.ndarray,
    total_idf: float,
    exact_case: bool,
    allowed: set[str] | None,
    enough: int | None = None,
) -> list[Hit]:
    """Candidates holding every query N-gram, kept only if the text holds the phrase.

    All of them share one upper bound, so once ``enough`` exact-case phrase hits (the best
    possible score) are in, the rest cannot rank higher and are not read.
    """
    hits: list[Hit] = []
    exact_hits = 0
    ids = candidates.tolist()
    for start in range(0, len(ids), 16):
        if enough is not None and exact_hits >= enough:
            break
        for p in mem.passages(sid, ids[start : start + 16]):
            if p is None or (allowed is not None and p.source not in allowed):
                continue
            exact = query in p.text
            if (exact_case and not exact) or folded_q not in fold_fast(p.text):
                continue
            exact_hits += exact
            hits.append(
                _hit(p, 3 * total_idf + (0.25 * total_idf if exact else 0), True, folded_q, query)
            )
    return hits


def ngram_texts(mem: Memory, text: str) -> dict[int, str]:
    """Folded text of each N-gram of ``text``, keyed by fingerprint."""
    ids = mem.tokenizer.encode(text)
    n = mem.manifest.ngram
    if len(ids) < n:
        return {}
    canon = mem.tokenizer.canonical.table[ids].astype("int64")[None]
    all_fps = mem.hasher.fingerprints(canon, n)[0, n - 1 :].astype("uint64")
    out = {}
    for pos, fp in enumerate(all_fps.tolist()):
        out.setdefault(fp, fold_fast(mem.tokenizer.decode(ids[pos : pos + n])).strip())
    return out


def _partial_hits(
    mem: Memory,
    sid: int,
    query: str,
    folded_q: str,
    variants: list[str],
    idf: dict[int, float],
    candidates: list[int],
    need: int,
    exact_case: bool,
    allowed: set[str] | None,
) -> list[Hit]:
    """Best partial overlaps until ``need`` are found; an N-gram counts only if its text is
    in the stored passage, so a fingerprint collision never makes a hit."""
    grams = [ngram_texts(mem, v) for v in variants]
    scored: list[tuple[float, Passage]] = []
    for start in range(0, len(candidates), 32):
        if len(scored) >= need:
            break
        for p in mem.passages(sid, candidates[start : start + 32]):
            if p is None or (allowed is not None and p.source not in allowed):
                continue
            folded = fold_fast(p.text)
            overlap = max(
                sum(idf.get(fp, 0.0) for fp, t in g.items() if t and t in folded) for g in grams
            )
            if overlap and (not exact_case or query in p.text):
                scored.append((overlap, p))
    scored.sort(key=lambda sp: -sp[0])
    return [
        _hit(p, score, folded_q in fold_fast(p.text), folded_q, query) for score, p in scored[:need]
    ]


def _hit(p: Passage, score: float, phrase: bool, folded_q: str, query: str) -> Hit:
    lines = p.text.splitlines()
    best = 0
    if phrase:
        best = next((i for i, line in enumerate(lines) if folded_q in fold_fast(line)), 0)
    else:
        words = set(re.findall(r"\w+", fold_fast(query)))
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
        p = decode_passage(raw)
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
