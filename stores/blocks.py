"""Gathering rows from fixed-size blocks (LMDB values, shard files) without a Python loop per row."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from engram_sdk.workers import POOL_THREADS, run_parts

PARALLEL_MIN_ROWS = 8192
# Rows read from disk wait on page faults: many in flight keep the drive busy.
DISK_READ_THREADS = POOL_THREADS
# Copies from memory: one part per core, at most 8.
COPY_PARTS = max(1, min(8, os.cpu_count() or 1))


def gather_by_block(
    row_ids: np.ndarray,
    rows_per_block: int,
    block: Callable[[int], np.ndarray | None],
    out: np.ndarray,
    workers: int | None = None,
) -> None:
    """Fill ``out[i] = row row_ids[i]``; ``block(b)`` returns rows of block b (None: zeros).

    Ids are grouped by block with one radix argsort, so the Python work is per touched
    block; blocks are resolved on the calling thread and the copies (which release the GIL)
    are split into ``workers`` parts run on the shared pool (:mod:`engram_sdk.workers`;
    default: up to 8, one per core, and only for big gathers; an explicit count, for disk
    reads, spreads even small ones).
    """
    blocks = row_ids // rows_per_block
    if len(blocks) and blocks.max() < 1 << 16:
        blocks = blocks.astype(np.uint16)  # numpy radix-sorts 16-bit keys
    order = np.argsort(blocks, kind="stable")
    sorted_blocks = blocks[order]
    cuts = np.flatnonzero(np.diff(sorted_blocks)) + 1
    bounds = list(zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(order)].tolist(), strict=True))
    local = row_ids[order] - sorted_blocks.astype(np.int64) * rows_per_block
    jobs = [(s, e, block(int(sorted_blocks[s]))) for s, e in bounds]

    def copy(part: list[tuple[int, int, np.ndarray | None]]) -> None:
        for s, e, rows in part:
            if rows is None:
                out[order[s:e]] = 0
            else:
                out[order[s:e]] = rows[local[s:e]]

    latency_bound = workers is not None  # rows from disk: even a few page faults overlap
    workers = workers or COPY_PARTS
    small = len(row_ids) < PARALLEL_MIN_ROWS and not latency_bound
    if small or workers == 1 or len(jobs) == 1:
        copy(jobs)
        return
    if len(jobs) < workers:  # few big blocks: split each block's rows instead
        jobs = [
            (a, min(a + (e - s + workers - 1) // workers, e), rows)
            for s, e, rows in jobs
            for a in range(s, e, (e - s + workers - 1) // workers)
        ]
    run_parts(copy, [jobs[i::workers] for i in range(workers)])


def take_rows(source: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = source[idx]`` for 2-D row arrays of any dtype, on torch's thread pool.

    Rows are copied as raw bytes with ``torch.index_select`` (one ``memcpy`` per row, split
    over the intra-op threads, no GIL held), several times faster than ``np.take``.
    """
    plain = source.flags.writeable and source.flags.c_contiguous and out.flags.c_contiguous
    if len(idx) < PARALLEL_MIN_ROWS or not plain or source.ndim != 2:
        np.take(source, idx, axis=0, out=out)
        return
    import torch

    width = source.shape[1] * source.itemsize
    src = torch.from_numpy(source.reshape(len(source), -1).view(np.uint8).reshape(-1, width))
    dst = torch.from_numpy(out.reshape(len(out), -1).view(np.uint8).reshape(-1, width))
    torch.index_select(src, 0, torch.from_numpy(np.asarray(idx, dtype=np.int64)), out=dst)


def parallel_take(source: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
    """``np.take(source, idx, axis=0, out=out)``, split over the shared pool for big batches."""
    workers = COPY_PARTS
    if len(idx) < PARALLEL_MIN_ROWS or workers == 1:
        np.take(source, idx, axis=0, out=out)
        return
    cuts = np.linspace(0, len(idx), workers + 1).astype(np.int64).tolist()

    def take(i: int) -> None:
        a, b = cuts[i], cuts[i + 1]
        np.take(source, idx[a:b], axis=0, out=out[a:b])

    run_parts(take, range(workers))
