"""Sample generation on all cores: one job per sample, in a process pool.

Generation is pure Python + tokenizer work and holds the GIL, so threads do not help; each
worker process gets the token counter once (pickled at start-up) and returns finished
samples. Counters that cannot be pickled (or ``workers=1``) run in this process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from engram_sdk.evals.haystacks import Haystack
from engram_sdk.evals.length import TokenCounter
from engram_sdk.evals.sample import Sample

_COUNTER: TokenCounter | None = None


@dataclass(frozen=True)
class Job:
    """One sample to generate: a registered task, or a grid cell when ``depth`` is set."""

    task: str
    length: int
    index: int
    seed: int
    depth: float | None = None
    haystack: Haystack | None = None
    qa_files: dict[str, str] | None = None
    grid: dict[str, Any] = field(default_factory=dict)  # needles, question, answers


def run_job(job: Job, counter: TokenCounter) -> Sample:
    """Generate the sample ``job`` names."""
    from engram_sdk.evals import tasks

    if job.depth is None:
        return tasks.generate_one(
            job.task, job.length, job.index, counter, job.seed, job.haystack, job.qa_files
        )
    from engram_sdk.evals.niah import grid_niah

    return grid_niah(
        tasks.GRID_TASK.config(),
        job.length,
        job.depth,
        job.index,
        job.seed,
        counter,
        job.haystack,
        **job.grid,
    )


def _init(counter_bytes: bytes) -> None:
    global _COUNTER
    _COUNTER = pickle.loads(counter_bytes)


def _worker(job: Job) -> Sample:
    assert _COUNTER is not None
    return run_job(job, _COUNTER)


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def generate_all(jobs: Sequence[Job], counter: TokenCounter, workers: int = 0) -> list[Sample]:
    """Every job's sample, in job order, on ``workers`` processes (0: all cores).

    Forked workers inherit the counter; spawned ones get it pickled once at start-up.
    """
    global _COUNTER
    workers = min(workers or default_workers(), len(jobs))
    if workers <= 1:
        return [run_job(j, counter) for j in jobs]
    if "fork" in mp.get_all_start_methods():
        _COUNTER = counter
        ctx = mp.get_context("fork")
        pool = ProcessPoolExecutor(workers, mp_context=ctx)
    else:
        try:
            blob = pickle.dumps(counter)
        except (pickle.PicklingError, TypeError, AttributeError):
            return [run_job(j, counter) for j in jobs]
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(blob,))
    try:
        with pool:
            return list(pool.map(_worker, jobs, chunksize=1))
    finally:
        _COUNTER = None
