"""DeepSeek-V4 attention at O(T·k): per query chunk, gathered keys instead of (T × S) logits.

Each query attends to its window (the last ``window_size`` positions, itself included) and
to compressed entries: for a compressed-sparse (CSA) layer the indexer's top-k, selected by
:func:`engram_sdk.model.sparse.indexer_topk`'s chunked running top-k (never a T × W score
tensor); for a heavily compressed (HCA) layer every entry it may see. The chosen keys are
gathered and :func:`engram_sdk.model.sparse.sparse_attention` takes the softmax with the
per-head sink. Queries go in chunks, so index tensors stay O(chunk · k).

Equal to the dense reference (``V4Attention`` with ``dense_reference``) up to rounding.
Ties in the indexer (equal scores) go to the earliest entry (stable sort on CPU; CUDA's
``topk`` picks any); the dense reference's ``topk`` picks among ties as torch does.
Positions must be consecutive (``first``, ``first + 1``, ...), as the model passes them.
"""

from __future__ import annotations

import torch
from engram_sdk.model.sparse import EMPTY, indexer_topk, sparse_attention, window_indices

QUERY_CHUNK = 4096  # queries whose index tensors are built at once
GATHER_ELEMENTS = 2**25  # gathered key channels (or logits) per attention step; 4x on CUDA


def v4_sparse_attention(
    q: torch.Tensor,
    kv: torch.Tensor,
    sink: torch.Tensor,
    *,
    first: int,
    window_start: int,
    window: int,
    entries: torch.Tensor | None = None,
    ratio: int = 0,
    index: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    topk: int = 0,
) -> torch.Tensor:
    """Attention of q (B, T, H, d) at positions ``first``.. → (B, T, H, d).

    kv (B, Sw, d): window keys (keys are values) at positions ``window_start``..;
    ``entries`` (B, W, d): compressed entries, entry w visible from position
    ``(w + 1) * ratio - 1`` on; ``index``: the indexer's queries (B, T, Hi, di), head weights
    (B, T, Hi) and keys (B, W, di) — given, the layer is CSA and keeps ``topk`` entries per
    query; absent, HCA, every visible entry.
    """
    b, t, h, d = q.shape
    sw = kv.shape[1]
    keys = kv if entries is None else torch.cat([kv, entries], dim=1)
    n_entries = 0 if entries is None else entries.shape[1]
    scale = d**-0.5
    outs = []
    for t0 in range(0, t, QUERY_CHUNK):
        t1 = min(t, t0 + QUERY_CHUNK)
        pos = torch.arange(first + t0, first + t1, device=q.device).expand(b, -1)
        idx = window_indices(pos - window_start, window)
        seen = min(n_entries, (first + t1) // ratio) if ratio else 0  # by the chunk's last
        if seen:
            chosen = _chosen_entries(pos, seen, ratio, index, topk, t0, t1)
            idx = torch.cat([idx, torch.where(chosen == EMPTY, EMPTY, chosen + sw)], dim=-1)
        width = max(d, h) * idx.shape[-1] * b
        outs.append(sparse_attention(
            q[:, t0:t1], keys, keys, idx, scale, sink=sink,
            query_chunk=max(1, GATHER_ELEMENTS * (4 if q.is_cuda else 1) // width),
        ))  # fmt: skip
    return torch.cat(outs, dim=1)


def _chosen_entries(
    pos: torch.Tensor,
    seen: int,
    ratio: int,
    index: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    topk: int,
    t0: int,
    t1: int,
) -> torch.Tensor:
    """Entry indices (B, Tc, K) of queries at ``pos`` (B, Tc), EMPTY where none: the
    indexer's top-k among the first ``seen`` entries, or (no index) all of them visible."""
    entry_pos = (torch.arange(seen, device=pos.device) + 1) * ratio - 1  # first that sees it
    if index is None:
        every = torch.arange(seen, device=pos.device).expand(*pos.shape, -1)
        return every.masked_fill(entry_pos > pos[..., None], EMPTY)
    iq, weights, ikeys = index
    return indexer_topk(
        iq[:, t0:t1].float(), weights[:, t0:t1].float() * iq.shape[-1] ** -0.5,
        ikeys[:, :seen].float(), pos, min(topk, seen), key_pos=entry_pos,
    )  # fmt: skip
