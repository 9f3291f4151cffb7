"""Top-k by threshold and collect: the indexer's selection for queries that see many keys.

Pass 1 gives each query's maximum score per group of keys; the k-th largest of those maxima,
τ, is at most the k-th largest score (the maxima are some of the scores), so every key of
the top-k scores >= τ. The keys scoring >= τ (not many more than k) go to a small candidate
buffer, whose top-k is the answer. Two ways to get there (picked by timing on CUDA):

- *stored*: one scoring kernel writes the chunk's scores and the group maxima; candidates
  are picked from the written scores (``model/indexer_stored.py``): scores computed once;
- *rescored*: pass 1 writes only the maxima; pass 2 scores again and collects
  (``model/indexer_triton.py``): O(T · (k + S/group)) memory, no (T × S) scores written.
"""

from __future__ import annotations

import os
import warnings

import torch
from engram_sdk.model.sparse import EMPTY, THRESHOLD_MIN_QUERIES, _round_chunk, _top, indexer_topk

THRESHOLD_MAX_GROUP = 64  # keys per group at most (half a scoring tile)


def _threshold_split(query_pos: torch.Tensor, key_pos: torch.Tensor, topk: int) -> int:
    """First query column from which every query sees >= 4·topk keys (threshold selection).

    One device sync. Columns are taken as a suffix, so positions rising along T (prefill)
    split into an early part for the tiled path and a late part for threshold selection.
    """
    seen = torch.searchsorted(key_pos.contiguous(), query_pos.amin(0).contiguous(), right=True)
    enough = (seen >= 4 * topk).flip(0).cumprod(0).flip(0)  # 1 where this column on all see enough
    t = query_pos.shape[1]
    late = int(enough.sum())
    late -= late % THRESHOLD_MIN_QUERIES  # whole blocks of queries, or none: few distinct lengths
    return t - late


def threshold_group(seen: int, topk: int) -> int:
    """Keys per group for threshold selection when each query sees >= ``seen`` keys.

    The threshold (the k-th largest group maximum) needs >= k groups per query; with 4k to
    8k groups it sits near the k-th score, so not many more than k keys qualify (a random
    model at 128K: ~1.25k), and the maxima stay 4k-8k per query up to 64·8k keys.
    """
    group = 2
    while group < THRESHOLD_MAX_GROUP and 4 * (2 * group) * topk <= seen:
        group *= 2
    return group


def stored_group(seen: int, topk: int) -> int:
    """Keys per group when the scores are stored: 2k-4k maxima per query.

    With the scores in memory the group size costs no scoring; fewer maxima make the k-th
    maximum cheaper, and τ lower: 1.15k-1.4k keys qualify at 4k-2k maxima for i.i.d.
    scores (a row that overflows its buffer takes the top-k of its stored scores).
    """
    group = 1
    while group < THRESHOLD_MAX_GROUP and seen // (2 * group) >= 2 * topk:
        group *= 2
    return group


@torch.no_grad()
def threshold_topk(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    topk: int,
    *,
    key_pos: torch.Tensor,
    tile_elements: int,
    capacity: int | None = None,
    path: str = "stored",
) -> torch.Tensor:
    """Top-k by a threshold (Triton), equal to the tiled running top-k.

    τ, the k-th largest of each query's maxima per group of keys, is at most its k-th
    largest score; the keys scoring >= τ go to a ``capacity`` buffer whose top-k is the
    answer (4k by default). ``path``:

    - "recompute": pass 1 writes only the group maxima, pass 2 scores again and keeps the
      keys >= τ, sort-free selection (``model/indexer_recompute.py``); nothing (T × S);
    - "stored" (the default: the fastest in every H200 run): one scoring pass writes a query
      chunk's scores (at most ``4 · tile_elements``) and the candidates are picked from memory;
    - "rescored": as "recompute" with the older collect kernel and ``torch.topk``.

    - "auto": whichever of "recompute" and "stored" ran faster on the first call (on CUDA;
      elsewhere "recompute").

    A query whose buffer overflowed (ties at τ, scores clustered in few groups) is resolved
    by a raised threshold (recompute), the top-k of its stored scores (stored), or the tiled
    path. Every query must see >= 4·topk keys (``_threshold_split``). A path whose kernels
    fail to build warns and falls back ("recompute" → "stored" → "rescored").
    """
    if path == "auto":
        from engram_sdk.model.indexer_triton import fastest

        def run(chosen: str) -> torch.Tensor:
            return threshold_topk(
                q, weights, keys, query_pos, topk, key_pos=key_pos,
                tile_elements=tile_elements, capacity=capacity, path=chosen,
            )  # fmt: skip

        paths = ("recompute", "stored")
        return fastest(("threshold path", *q.shape[2:]), {p: lambda p=p: run(p) for p in paths})
    if path not in SELECTORS:
        raise ValueError(f"path must be one of {sorted(SELECTORS)} or 'auto', got {path!r}")
    while path in _FAILED:
        path = FALLBACK[path]
    b, t = query_pos.shape
    s = keys.shape[1]
    capacity = capacity or 4 * topk
    seen = int(torch.searchsorted(key_pos, query_pos.amin(), right=True))
    group = (threshold_group if path == "rescored" else stored_group)(seen, topk)
    if path == "stored":
        chunk = _round_chunk(max(64, 4 * tile_elements // (b * s)))
    else:
        chunk = _round_chunk(max(64, tile_elements // (b * (s // group + capacity))))
    out = torch.empty(b, t, topk, dtype=torch.long, device=q.device)
    for q0 in range(0, t, chunk):
        part = (q[:, q0 : q0 + chunk], weights[:, q0 : q0 + chunk], keys)
        pos = query_pos[:, q0 : q0 + chunk]
        try:
            out[:, q0 : q0 + chunk] = SELECTORS[path](part, pos, key_pos, group, topk, capacity)
        except Exception as exc:  # e.g. a Triton build failure: say so, take the fallback
            if isinstance(exc, torch.OutOfMemoryError) or path not in FALLBACK:
                raise
            _FAILED[path] = repr(exc)
            warnings.warn(f"{path} top-k failed, {FALLBACK[path]} from now: {exc!r}", stacklevel=2)
            return threshold_topk(
                q, weights, keys, query_pos, topk, key_pos=key_pos,
                tile_elements=tile_elements, capacity=capacity, path=FALLBACK[path],
            )  # fmt: skip
    return out


FALLBACK = {"recompute": "stored", "stored": "rescored"}
_FAILED: dict[str, str] = {}  # path → why it failed in this process, if it did


def _select_stored(
    part: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    pos: torch.Tensor,
    key_pos: torch.Tensor,
    group: int,
    topk: int,
    capacity: int,
) -> torch.Tensor:
    """One query chunk: scores written once, candidates picked from them → (B, Tq, topk)."""
    from engram_sdk.model.indexer_stored import select, stored_scores

    scores, maxima = stored_scores(*part, pos, key_pos, group)
    tau = kth_largest(maxima, topk, sort_free=False)
    cand, cand_idx, count = select(scores, tau, capacity, maxima, group)
    del maxima
    picked = _pick(cand, cand_idx, topk)
    overflowed = count > capacity
    if bool(overflowed.any()):
        top, where = _top(scores[overflowed], topk)
        picked[overflowed] = where.masked_fill_(top == float("-inf"), EMPTY)
    return picked


def _select_rescored(
    part: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    pos: torch.Tensor,
    key_pos: torch.Tensor,
    group: int,
    topk: int,
    capacity: int,
) -> torch.Tensor:
    """One query chunk: group maxima, then scored again and collected → (B, Tq, topk)."""
    maxima = _group_maxima(part, pos, key_pos, group)
    tau = kth_largest(maxima, topk, sort_free=False)
    del maxima
    cand, cand_idx, count = _collect(part, pos, key_pos, tau, capacity)
    picked = _pick(cand, cand_idx, topk)
    _redo_overflowed(picked, count > capacity, part, pos, key_pos, topk)
    return picked


def _pick(cand: torch.Tensor, cand_idx: torch.Tensor, topk: int) -> torch.Tensor:
    """Key indices of the top-k of a candidate buffer, ``EMPTY`` for an unused slot."""
    top, where = _top(cand, topk)
    return cand_idx.gather(-1, where).long().masked_fill_(top == float("-inf"), EMPTY)


def _sort_free(x: torch.Tensor) -> bool:
    """Whether the Triton selection kernels run for ``x`` (CUDA or Triton's interpreter)."""
    from engram_sdk.model.sparse_select import MAX_ROW

    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    return (x.is_cuda or interpreted) and x.shape[-1] <= MAX_ROW and x.numel() > 0


def pick(cand: torch.Tensor, cand_idx: torch.Tensor, topk: int) -> torch.Tensor:
    """:func:`_pick`, or sort-free in Triton (``topk_pick_triton``) where it runs, whichever
    timed faster for this row width (picked on first use)."""
    if not _sort_free(cand):
        return _pick(cand, cand_idx, topk)
    from engram_sdk.model.indexer_triton import fastest
    from engram_sdk.model.sparse_select import topk_pick_triton

    variants = {
        f"sort-free, {w} warps": lambda w=w: topk_pick_triton(cand, cand_idx, topk, EMPTY, w)
        for w in (8, 4)
    }
    variants["torch.topk"] = lambda: _pick(cand, cand_idx, topk)
    return fastest(("pick", _width(cand)), variants)


def _width(x: torch.Tensor) -> int:
    return 1 << max(0, x.shape[-1] - 1).bit_length()


def _group_maxima(
    part: tuple[torch.Tensor, ...], pos: torch.Tensor, key_pos: torch.Tensor, group: int
) -> torch.Tensor:
    """Pass 1 by the fastest equivalent kernel variant (picked once per shape of heads)."""
    from engram_sdk.model.indexer_triton import fastest, group_max_triton

    args = (*part, pos, key_pos, group)
    return fastest(
        ("group max", *part[0].shape[2:]),
        {
            "dot per head": lambda: group_max_triton(*args),
            "dot per head, 8 tiles a program": lambda: group_max_triton(*args, tiles_per_program=8),
            "heads in one dot": lambda: group_max_triton(*args, stacked=True),
        },
    )


def _collect(
    part: tuple[torch.Tensor, ...],
    pos: torch.Tensor,
    key_pos: torch.Tensor,
    tau: torch.Tensor,
    capacity: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pass 2 by the fastest equivalent kernel variant (picked once per shape of heads)."""
    from engram_sdk.model.indexer_triton import collect_triton, fastest

    args = (*part, pos, key_pos, tau, capacity)
    return fastest(
        ("collect", *part[0].shape[2:]),
        {
            "row sums": lambda: collect_triton(*args),
            "key atomics": lambda: collect_triton(*args, per_key=True),
            "row sums, 8 tiles a program": lambda: collect_triton(*args, tiles_per_program=8),
            "key atomics, 8 tiles a program": lambda: collect_triton(
                *args, per_key=True, tiles_per_program=8
            ),
        },
    )


def kth_largest(x: torch.Tensor, k: int, *, sort_free: bool = True) -> torch.Tensor:
    """The k-th largest value along the last dim: a sort-free bitwise search in Triton
    (``sort_free``, rows up to 16K, where it timed faster) or the least of an unsorted
    ``topk`` (CUDA; it runs multi-block, ``kthvalue`` one block per row)."""
    if sort_free and _sort_free(x):
        from engram_sdk.model.indexer_triton import fastest
        from engram_sdk.model.sparse_select import kth_largest_triton

        variants = {
            f"sort-free, {w} warps": lambda w=w: kth_largest_triton(x, k, w) for w in (8, 4)
        }
        variants["torch.topk"] = lambda: kth_largest(x, k, sort_free=False)
        return fastest(("k-th largest", _width(x)), variants)
    if x.is_cuda:
        return x.topk(k, dim=-1, sorted=False).values.amin(-1)
    return x.kthvalue(x.shape[-1] - k + 1, dim=-1).values


def _redo_overflowed(
    out: torch.Tensor,
    overflowed: torch.Tensor,
    part: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    pos: torch.Tensor,
    key_pos: torch.Tensor,
    topk: int,
) -> None:
    """Rows whose candidate buffer overflowed get the tiled path's answer (in place)."""
    if not bool(overflowed.any()):
        return
    q, weights, keys = part
    for row in overflowed.any(-1).nonzero()[:, 0].tolist():
        cols = overflowed[row].nonzero()[:, 0]
        out[row, cols] = indexer_topk(
            q[row : row + 1, cols], weights[row : row + 1, cols], keys[row : row + 1],
            pos[row : row + 1, cols], topk, key_pos=key_pos, fused=True, threshold=False,
        )[0]  # fmt: skip


def _select_recomputed(*args) -> torch.Tensor:
    from engram_sdk.model.indexer_recompute import select_recomputed

    return select_recomputed(*args)


SELECTORS = {  # path → one query chunk's selection (part, pos, key_pos, group, topk, capacity)
    "recompute": _select_recomputed,
    "stored": _select_stored,
    "rescored": _select_rescored,
}
