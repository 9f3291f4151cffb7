"""Turn changed files into passages: read safely, hash, sniff, decode, chunk.

This is the CPU-bound part of ingest and needs nothing but the file, so large jobs run it
on every core in a process pool (results come back in walk order); small ones run it in
process, where a pool would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import xxhash

from engram_sdk.memory.chunking import CODE_SUFFIXES, Chunk, chunk_text
from engram_sdk.memory.safe_read import SkipFile, decode_text, looks_binary, read_limited
from engram_sdk.memory.walker import WalkedFile

PARALLEL_MIN_BYTES = 8 << 20  # below this much changed data, one process is faster
PARALLEL_MIN_FILES = 64
PARALLEL_MIN_CORES = 4  # the parent indexes while workers prepare: 2 cores gave 0.58x


@dataclass(frozen=True)
class Job:
    """A file whose stat changed, and the hash it had when last indexed (if any)."""

    walked: WalkedFile
    old_xxh3: str | None
    max_bytes: int


@dataclass(frozen=True)
class Prepared:
    """The outcome for one file: ``skipped`` (a reason), ``unchanged`` or its passages."""

    job: Job
    skipped: str | None = None
    detail: str = ""
    xxh3: str = ""
    unchanged: bool = False
    encoding: str = "utf-8"
    replaced_bytes: int = 0
    size: int = 0
    chunks: tuple[Chunk, ...] = ()


def prepare(job: Job) -> Prepared:
    """Read, hash and (if the bytes changed) decode and chunk one file."""
    f = job.walked
    try:
        data = read_limited(f.path, job.max_bytes, f.identity)
    except SkipFile as skip:
        return Prepared(job, skipped=skip.reason, detail=skip.detail)
    if looks_binary(data):
        return Prepared(job, skipped="binary")
    digest = xxhash.xxh3_64_hexdigest(data)
    if digest == job.old_xxh3:
        return Prepared(job, xxh3=digest, unchanged=True, size=len(data))
    decoded = decode_text(data)
    chunks = chunk_text(decoded.text, f.path.suffix.lower() in CODE_SUFFIXES)
    return Prepared(
        job,
        xxh3=digest,
        encoding=decoded.encoding,
        replaced_bytes=decoded.replaced_bytes,
        size=len(data),
        chunks=tuple(chunks),
    )


def worker_count(jobs: list[Job], workers: int | None) -> int:
    """``workers`` if given, else every core for large jobs and 1 for small ones."""
    if workers is not None:
        return max(1, workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    big = sum(j.walked.size for j in jobs) >= PARALLEL_MIN_BYTES
    if big and len(jobs) >= PARALLEL_MIN_FILES and (cores or 1) >= PARALLEL_MIN_CORES:
        return (cores or 1) - 1  # one core stays with the parent, which writes the index
    return 1


def prepare_all(jobs: Iterable[Job], workers: int) -> Iterator[Prepared]:
    """:func:`prepare` for each job, in order; on ``workers`` processes when above 1."""
    if workers <= 1:
        yield from map(prepare, jobs)
        return
    # fork is cheap and the workers touch only files (never the parent's store handles)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
        yield from pool.map(prepare, jobs, chunksize=16)
