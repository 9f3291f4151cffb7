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
    threshold_path: str = "auto",
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
    ``threshold`` too, query chunks that see enough keys select by a threshold
    (:func:`engram_sdk.model.sparse_threshold.threshold_topk`, by ``threshold_path``),
    with no top-k merges.
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
    hi = _KeyBound(s, t, positional, latest_position, query_pos)
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
        from engram_sdk.model.sparse_threshold import _threshold_split, threshold_topk

        split = _threshold_split(query_pos, key_pos, topk)
        if split < t:
            end = hi.most(split, t)
            out[:, split:] = threshold_topk(
                q[:, split:], weights[:, split:], keys[:, :end], query_pos[:, split:], topk,
                key_pos=key_pos[:end], tile_elements=tile_elements, path=threshold_path,
            )  # fmt: skip
    for q0 in range(0, split, query_chunk):
        q1 = min(q0 + query_chunk, split)
        pos = query_pos[:, q0:q1]
        best = torch.full((b, q1 - q0, topk), float("-inf"), device=q.device)
        best_idx = torch.full((b, q1 - q0, topk), EMPTY, dtype=torch.long, device=q.device)
        first = min(lo[q0:q1]) if lo is not None else 0
        for k0 in range(first, hi.most(q0, q1), key_chunk):
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


THRESHOLD_MIN_QUERIES = 64  # fewer queries (decoding) take the tiled path: one small tile


class _KeyBound:
    """One past the last key any row of a query column may see, for column ranges.

    With a host bound on the latest position, column j's bound is
    ``min(S, latest - (T - 1 - j) + 1)`` — rising with j, so a range's is its last column's —
    found without a Python list of T ints (16K columns a prefill chunk, every layer).
    """

    def __init__(
        self, s: int, t: int, positional: bool, latest: int | None, query_pos: torch.Tensor
    ) -> None:
        self.s, self.t, self.latest = s, t, latest if positional else None
        self.columns = None  # per-column bounds from the device (one sync), when no host bound
        if positional and latest is None:
            self.columns = (query_pos.amax(0) + 1).clamp(max=s).tolist()

    def most(self, a: int, b: int) -> int:
        """The largest bound of columns ``a`` to ``b - 1``."""
        if self.columns is not None:
            return max(self.columns[a:b])
        if self.latest is None:  # keys at arbitrary positions: every key may be seen
            return self.s
        return min(self.s, self.latest - (self.t - 1 - (b - 1)) + 1)


def _round_chunk(n: int) -> int:
    """A query chunk size: past 64, a multiple of 64, so kernels see few distinct lengths
    (Triton compiles a kernel again for a length not divisible by 16)."""
    return max(1, n - n % 64 if n > 64 else n)


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
    sink: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax attention of each query over its gathered keys → (B, T, H, Dv).

    q (B, T, H, Dk); keys (B, S, Dk) and values (B, S, Dv) shared by all heads (pass the
    same tensor twice when keys are values: it is gathered once); idx (B, T, K) key
    positions, ``EMPTY`` for none. A query with no key gets zeros. ``sink`` (H,): a per-head
    logit that joins every softmax with no value (DeepSeek-V4's attention sink; torch only).
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
        fits = q.is_cuda and not wants_grad and sink is None
        backend = "triton" if fits and triton_available() else "torch"
    if backend == "triton":
        if sink is not None:
            raise InputError("backend='triton' takes no sink; use backend='torch'")
        if not q.is_cuda:
            raise InputError("backend='triton' needs CUDA tensors")
        from engram_sdk.model.sparse_triton import sparse_attention_triton

        return sparse_attention_triton(q, keys, values, idx, scale)
    outs = []
    for t0 in range(0, q.shape[1], query_chunk):
        part = (q[:, t0 : t0 + query_chunk], keys, values, idx[:, t0 : t0 + query_chunk], scale,
                sink)  # fmt: skip
        if wants_grad:  # keep no gathered (T, k, d) tensors for backward: regather per chunk
            outs.append(checkpoint(_gathered_attention, *part, use_reentrant=False))
        else:
            outs.append(_gathered_attention(*part))
    return torch.cat(outs, dim=1)


def _gathered_attention(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    idx: torch.Tensor,
    scale: float,
    sink: torch.Tensor | None = None,
) -> torch.Tensor:
    b, t, k = idx.shape
    flat = idx.clamp(min=0).reshape(b, t * k)
    k_sel = _rows(keys, flat).view(b, t, k, -1)
    v_sel = k_sel if values is keys else _rows(values, flat).view(b, t, k, -1)
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = torch.einsum("bthd,btkd->bthk", q.to(acc), k_sel.to(acc)) * scale
    scores = scores.masked_fill((idx == EMPTY)[:, :, None, :], float("-inf"))
    if sink is not None:  # one more logit per head, with no value: softmax, then drop it
        column = sink.to(acc).view(1, 1, -1, 1).expand(b, t, -1, 1)
        probs = torch.cat([scores, column], dim=-1).softmax(dim=-1)[..., :-1]
    else:
        probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a row of only EMPTY → zeros
    return torch.einsum("bthk,btkd->bthd", probs, v_sel.to(acc)).to(q.dtype)


def _rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x (B, S, d) rows at rows (B, N) → (B, N, d); index_select copies whole rows (on CPU
    about twice as fast as ``gather`` with an expanded index)."""
    if x.shape[0] == 1:
        return x[0].index_select(0, rows[0]).unsqueeze(0)
    return torch.stack([x[i].index_select(0, rows[i]) for i in range(x.shape[0])])


def triton_available() -> bool:
    """Whether Triton can be imported (it ships with CUDA builds of torch)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True
