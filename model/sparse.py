"""Sparse attention whose cost is O(T·k): a chunked running top-k and attention over gathered keys.

Keys and values are shared by every head (the MQA form MLA takes once queries are absorbed
into the latent, and the form DeepSeek-V3.2's sparse kernels use). Nothing here builds a
(T × S) tensor: the indexer's scores are computed one (query chunk × key chunk) tile at a
time and folded into a running top-k; attention then gathers each query's k keys.

``sparse_attention(backend="triton")`` runs a fused Triton kernel on CUDA (forward only);
the torch path is the reference and the one that trains.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from engram_sdk.errors import InputError

EMPTY = -1  # an index slot with no visible key


def visible(query_pos: torch.Tensor, key_pos: torch.Tensor, window: int = 0) -> torch.Tensor:
    """(B, Tq, Sk) bool: key visible to query (causal, and within ``window`` when > 0).

    query_pos (B, Tq), key_pos (Sk,) or (B, Sk).
    """
    kp = key_pos if key_pos.dim() == 2 else key_pos[None]
    seen = kp[:, None, :] <= query_pos[:, :, None]
    if window > 0:
        seen &= kp[:, None, :] > query_pos[:, :, None] - window
    return seen


def index_scores(q: torch.Tensor, weights: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Σ_h weights[t, h] · relu(q[t, h] · keys[s]) → (B, Tq, Sk), at least float32.

    The products run in the inputs' precision (bf16 on GPU), as DeepSeek runs them in FP8.
    """
    acc = torch.promote_types(q.dtype, torch.float32)
    logits = torch.einsum("bthd,bsd->bths", q, keys.to(q.dtype)).relu_()
    return torch.einsum("bth,bths->bts", weights.to(logits.dtype), logits).to(acc)


@torch.no_grad()
def indexer_topk(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    topk: int,
    *,
    key_pos: torch.Tensor | None = None,
    window: int = 0,
    key_chunk: int = 65536,
    tile_elements: int | None = None,
    latest_position: int | None = None,
    fused: bool = False,
    threshold: bool = True,
) -> torch.Tensor:
    """Each query's ``topk`` best visible keys by indexer score → (B, T, topk) long.

    q (B, T, H, D), weights (B, T, H), keys (B, S, D), query_pos (B, T). Scores are made one
    (query chunk × key chunk) tile at a time — a tile holds at most ``tile_elements``
    per-head logits — and merged into a running top-k, so memory never grows with T × S.
    Empty slots (fewer visible keys than ``topk``) hold ``EMPTY``. With the default
    ``key_pos`` (key s at position s), keys no query of a chunk can see are never scored.
    Ties go to the earliest key on CPU (stable sort); CUDA uses ``topk``.
    ``latest_position``: a host bound on the last query's position (query j then sits at
    most ``T - 1 - j`` before it), which spares a device sync. ``fused``: score tiles with
    the Triton kernel (CUDA, or Triton's interpreter; 1-D ``key_pos`` only); with
    ``threshold`` too, query chunks that see enough keys select by threshold-and-collect
    (:func:`threshold_topk`) and never write their scores.
    """
    b, t, h, _ = q.shape
    s = keys.shape[1]
    fused = fused and (key_pos is None or key_pos.dim() == 1)
    if topk < 1:
        raise InputError(f"topk must be >= 1, got {topk}")
    positional = key_pos is None
    if key_pos is None:
        key_pos = torch.arange(s, device=keys.device)
    # per query column: one past the last key any row may see, and the first (windows)
    if not positional:
        hi = [s] * t
    elif latest_position is not None:
        hi = [min(s, latest_position - (t - 1 - j) + 1) for j in range(t)]
    else:
        hi = (query_pos.amax(0) + 1).clamp(max=s).tolist()
    lo = (query_pos.amin(0) - window + 1).clamp(min=0).tolist() if positional and window else None
    if tile_elements is None:  # scores (or per-head logits) per tile: 2^28 on GPU, 2^24 on CPU
        tile_elements = 2**28 if q.is_cuda else 2**24
    if b * t * h * s <= tile_elements:  # everything fits one tile (decoding, short prompts)
        key_chunk = min(s, 2**22)  # (a CUDA grid's third dimension caps at 65535 blocks)
    key_chunk = min(key_chunk, s)
    per_query = b * key_chunk * (1 if fused else h)  # the fused kernel keeps no per-head logits
    query_chunk = _round_chunk(tile_elements // per_query)
    out = torch.empty(b, t, topk, dtype=torch.long, device=q.device)
    split = t  # queries from ``split`` on select by threshold (they all see enough keys)
    if fused and threshold and not window and t >= THRESHOLD_MIN_QUERIES:
        split = _threshold_split(query_pos, key_pos, topk)
        if split < t:
            end = max(hi[split:])
            out[:, split:] = threshold_topk(
                q[:, split:], weights[:, split:], keys[:, :end], query_pos[:, split:], topk,
                key_pos=key_pos[:end], tile_elements=tile_elements,
            )  # fmt: skip
    for q0 in range(0, split, query_chunk):
        q1 = min(q0 + query_chunk, split)
        pos = query_pos[:, q0:q1]
        best = torch.full((b, q1 - q0, topk), float("-inf"), device=q.device)
        best_idx = torch.full((b, q1 - q0, topk), EMPTY, dtype=torch.long, device=q.device)
        first = min(lo[q0:q1]) if lo is not None else 0
        for k0 in range(first, max(hi[q0:q1]), key_chunk):
            k1 = min(k0 + key_chunk, s)
            tile = score_tile(
                q[:, q0:q1],
                weights[:, q0:q1],
                keys[:, k0:k1],
                pos,
                key_pos[..., k0:k1],
                window,
                fused,
            )
            best, best_idx = _merge(best, best_idx, tile, k0, topk)
        out[:, q0:q1] = best_idx.masked_fill(best == float("-inf"), EMPTY)
    return out


def _round_chunk(n: int) -> int:
    """A query chunk size: past 64, a multiple of 64, so kernels see few distinct lengths
    (Triton compiles a kernel again for a length not divisible by 16)."""
    return max(1, n - n % 64 if n > 64 else n)


THRESHOLD_MIN_QUERIES = 64  # fewer queries (decoding) take the tiled path: one small tile
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
) -> torch.Tensor:
    """Top-k by threshold and collect (Triton), equal to the tiled running top-k.

    Pass 1 writes each query's maximum score per group of keys; the k-th largest of those
    maxima, τ, is at most the k-th largest score (the maxima are some of the scores). Pass 2
    scores again and collects each query's keys scoring >= τ into a ``capacity`` buffer
    (4k by default); the top-k of the buffer is the answer. A query whose buffer
    overflowed (ties at τ, scores clustered in few groups) is redone by the tiled path.
    Every query must see >= 4·topk keys (``_threshold_split``).
    """
    b, t = query_pos.shape
    s = keys.shape[1]
    capacity = capacity or 4 * topk
    seen = int(torch.searchsorted(key_pos, query_pos.amin(), right=True))
    group = threshold_group(seen, topk)
    chunk = _round_chunk(max(64, tile_elements // (b * (s // group + capacity))))
    out = torch.empty(b, t, topk, dtype=torch.long, device=q.device)
    for q0 in range(0, t, chunk):
        part = (q[:, q0 : q0 + chunk], weights[:, q0 : q0 + chunk], keys)
        pos = query_pos[:, q0 : q0 + chunk]
        maxima = _group_maxima(part, pos, key_pos, group)
        tau = kth_largest(maxima, topk)
        del maxima
        cand, cand_idx, count = _collect(part, pos, key_pos, tau, capacity)
        top, where = _top(cand, topk)
        picked = cand_idx.gather(-1, where).long().masked_fill_(top == float("-inf"), EMPTY)
        out[:, q0 : q0 + chunk] = picked
        _redo_overflowed(out[:, q0 : q0 + chunk], count > capacity, part, pos, key_pos, topk)
    return out


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


def kth_largest(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest value along the last dim (CUDA: the least of an unsorted top-k,
    which runs multi-block; ``kthvalue`` runs one block per row)."""
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


def score_tile(
    q: torch.Tensor,
    weights: torch.Tensor,
    keys: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    window: int,
    fused: bool,
) -> torch.Tensor:
    """Indexer scores of one tile, -inf where a key is not visible → (B, Tq, Sk) float."""
    if fused:
        from engram_sdk.model.indexer_triton import index_scores_triton

        return index_scores_triton(q, weights, keys, query_pos, key_pos, window)
    tile = index_scores(q, weights, keys)
    return tile.masked_fill_(~visible(query_pos, key_pos, window), float("-inf"))


def _merge(
    best: torch.Tensor, best_idx: torch.Tensor, tile: torch.Tensor, k0: int, topk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a tile of scores for keys k0.. into the running (scores, indices) top-k.

    The tile's own top-k is taken first, so only 2k candidates per query are merged.
    """
    tile_top, tile_where = _top(tile, min(topk, tile.shape[-1]))
    cand = torch.cat([best, tile_top], dim=-1)
    cand_idx = torch.cat([best_idx, tile_where + k0], dim=-1)
    top, where = _top(cand, topk)
    return top, cand_idx.gather(-1, where)


def _top(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest k along the last dim, in no set order on CUDA (a set of keys is what is
    wanted: sorting it costs time); on CPU sorted, ties to the lower index (stable sort)."""
    if x.is_cuda:
        return x.topk(k, dim=-1, sorted=False)
    top, where = x.sort(dim=-1, descending=True, stable=True)
    return top[..., :k], where[..., :k]


def window_indices(query_pos: torch.Tensor, window: int) -> torch.Tensor:
    """The last ``window`` positions up to each query → (B, T, window), EMPTY before 0."""
    idx = query_pos[..., None] - torch.arange(window - 1, -1, -1, device=query_pos.device)
    return idx.masked_fill(idx < 0, EMPTY)


def sparse_attention(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    idx: torch.Tensor,
    scale: float,
    *,
    backend: str = "torch",
    query_chunk: int = 256,
) -> torch.Tensor:
    """Softmax attention of each query over its gathered keys → (B, T, H, Dv).

    q (B, T, H, Dk); keys (B, S, Dk) and values (B, S, Dv) shared by all heads; idx
    (B, T, K) key positions, ``EMPTY`` for none. A query with no key gets zeros.
    ``backend``: "torch" (reference, differentiable; under autograd each query chunk's
    gathered keys are recomputed in backward rather than kept, so memory stays O(chunk·k)),
    "triton" (CUDA forward kernel), "auto" (Triton on CUDA without grad, else torch).
    """
    if backend not in ("torch", "triton", "auto"):
        raise InputError(f"backend must be 'torch', 'triton' or 'auto', got {backend!r}")
    wants_grad = torch.is_grad_enabled() and (
        q.requires_grad or keys.requires_grad or values.requires_grad
    )
    if backend == "auto":
        backend = "triton" if q.is_cuda and not wants_grad and triton_available() else "torch"
    if backend == "triton":
        if not q.is_cuda:
            raise InputError("backend='triton' needs CUDA tensors")
        from engram_sdk.model.sparse_triton import sparse_attention_triton

        return sparse_attention_triton(q, keys, values, idx, scale)
    outs = []
    for t0 in range(0, q.shape[1], query_chunk):
        part = (q[:, t0 : t0 + query_chunk], keys, values, idx[:, t0 : t0 + query_chunk], scale)
        if wants_grad:  # keep no gathered (T, k, d) tensors for backward: regather per chunk
            outs.append(checkpoint(_gathered_attention, *part, use_reentrant=False))
        else:
            outs.append(_gathered_attention(*part))
    return torch.cat(outs, dim=1)


def _gathered_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, idx: torch.Tensor, scale: float
) -> torch.Tensor:
    b, t, k = idx.shape
    flat = idx.clamp(min=0).reshape(b, t * k, 1)
    k_sel = keys.gather(1, flat.expand(-1, -1, keys.shape[-1])).view(b, t, k, -1)
    v_sel = values.gather(1, flat.expand(-1, -1, values.shape[-1])).view(b, t, k, -1)
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = torch.einsum("bthd,btkd->bthk", q.to(acc), k_sel.to(acc)) * scale
    scores = scores.masked_fill((idx == EMPTY)[:, :, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a row of only EMPTY → zeros
    return torch.einsum("bthk,btkd->bthd", probs, v_sel.to(acc)).to(q.dtype)


def triton_available() -> bool:
    """Whether Triton can be imported (it ships with CUDA builds of torch)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True
