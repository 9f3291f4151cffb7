"""Gathering rows from fixed-size blocks (LMDB values, shard files) without a Python loop per row."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def gather_by_block(
    row_ids: np.ndarray,
    rows_per_block: int,
    block: Callable[[int], np.ndarray | None],
    out: np.ndarray,
) -> None:
    """Fill ``out[i] = row row_ids[i]``; ``block(b)`` returns rows of block b (None: zeros).

    Ids are grouped by block with one argsort, so the Python work is per touched block.
    """
    blocks = row_ids // rows_per_block
    if len(blocks) and blocks.max() < 1 << 16:
        blocks = blocks.astype(np.uint16)  # numpy radix-sorts 16-bit keys
    order = np.argsort(blocks, kind="stable")
    sorted_blocks = blocks[order]
    cuts = np.flatnonzero(np.diff(sorted_blocks)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(order)]])
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        b = int(sorted_blocks[s])
        idx = order[s:e]
        rows = block(b)
        if rows is None:
            out[idx] = 0
        else:
            out[idx] = rows[row_ids[idx] - b * rows_per_block]
