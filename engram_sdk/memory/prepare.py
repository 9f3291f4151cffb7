"""Turn changed files into encoded passages: read safely, hash, sniff, decode, chunk, encode.

This is the CPU-bound part of ingest and needs nothing but the files, so large jobs run it
on every core in a process pool, a :class:`Bundle` of files (about a megabyte) per task;
results come back in walk order as compact arrays and bytes
(:class:`~engram_sdk.memory.passage_batch.PassageBatch`), never as per-passage objects, so
the parent only stores them. Small jobs run in process, where a pool would cost more than
it saves.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import xxhash

from engram_sdk.memory.chunking import CODE_SUFFIXES, Chunk, chunk_text
from engram_sdk.memory.passage_batch import PassageBatch, encode_chunks
from engram_sdk.memory.safe_read import SkipFile, decode_text, looks_binary, read_limited
from engram_sdk.memory.walker import WalkedFile

PARALLEL_MIN_BYTES = 8 << 20  # below this much changed data, one process is faster
PARALLEL_MIN_FILES = 64
BUNDLE_BYTES = 1 << 20  # files per worker task: about this much text
BUNDLE_FILES = 256
AHEAD_BYTES = 24 << 20  # files in flight on the workers: enough to keep them busy while the
# writer commits a batch (a few seconds for 32 MiB), little enough to bound their results


@dataclass(frozen=True)
class Job:
    """A file whose stat changed, and the hash it had when last indexed (if any)."""

    walked: WalkedFile
    old_xxh3: str | None
    max_bytes: int


@dataclass(frozen=True)
class Prepared:
    """The outcome for one file: ``skipped`` (a reason), ``unchanged`` or its passages
    (``passages`` of them, consecutive in its bundle's batch)."""

    job: Job
    skipped: str | None = None
    detail: str = ""
    xxh3: str = ""
    unchanged: bool = False
    encoding: str = "utf-8"
    replaced_bytes: int = 0
    size: int = 0
    passages: int = 0


@dataclass(frozen=True)
class Bundle:
    """Outcomes of consecutive files and the encoded passages of those that changed."""

    files: list[Prepared]
    batch: PassageBatch


def prepare(job: Job) -> tuple[Prepared, list[Chunk]]:
    """Read, hash and (if the bytes changed) decode and chunk one file."""
    f = job.walked
    try:
        data = read_limited(f.source, job.max_bytes, f.identity)
    except SkipFile as skip:
        return Prepared(job, skipped=skip.reason, detail=skip.detail), []
    if looks_binary(data):
        return Prepared(job, skipped="binary"), []
    digest = xxhash.xxh3_64_hexdigest(data)
    if digest == job.old_xxh3:
        return Prepared(job, xxh3=digest, unchanged=True, size=len(data)), []
    decoded = decode_text(data)
    code = os.path.splitext(f.source)[1].lower() in CODE_SUFFIXES
    chunks = chunk_text(decoded.text, code)
    done = Prepared(
        job,
        xxh3=digest,
        encoding=decoded.encoding,
        replaced_bytes=decoded.replaced_bytes,
        size=len(data),
        passages=len(chunks),
    )
    return done, chunks


def prepare_bundle(jobs: list[Job], threads: bool = False) -> Bundle:
    """:func:`prepare` each job and encode the passages of all of them as one batch."""
    files, chunks = [], []
    for job in jobs:
        done, mine = prepare(job)
        files.append(done)
        chunks += mine
    return Bundle(files, encode_chunks(chunks, threads=threads))


def bundles(jobs: list[Job]) -> list[list[Job]]:
    """Consecutive jobs in groups of about :data:`BUNDLE_BYTES` (or :data:`BUNDLE_FILES`)."""
    out: list[list[Job]] = [[]]
    size = 0
    for job in jobs:
        if size >= BUNDLE_BYTES or len(out[-1]) >= BUNDLE_FILES:
            out.append([])
            size = 0
        out[-1].append(job)
        size += job.walked.size
    return [b for b in out if b]


def worker_count(jobs: list[Job], workers: int | None) -> int:
    """``workers`` if given, else every core for large jobs and 1 for small ones."""
    if workers is not None:
        return max(1, workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    big = sum(j.walked.size for j in jobs) >= PARALLEL_MIN_BYTES
    if big and len(jobs) >= PARALLEL_MIN_FILES and (cores or 1) >= 2:
        return cores or 1
    return 1


def prepare_all(jobs: Iterable[Job], workers: int) -> Iterator[Bundle]:
    """:func:`prepare_bundle` for consecutive groups of jobs, in order; on ``workers``
    processes when above 1."""
    groups = bundles(list(jobs))
    if workers <= 1:  # small jobs: threads would cost more than they save
        yield from map(prepare_bundle, groups)
        return
    # fork is cheap and the workers touch only files (never the parent's store handles)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
        ahead: deque[tuple[Future[Bundle], int]] = deque()  # bounded: results wait for the writer
        in_flight = 0
        for group in groups:
            size = sum(j.walked.size for j in group)
            ahead.append((pool.submit(prepare_bundle, group), size))
            in_flight += size
            while len(ahead) > 2 * workers and in_flight > AHEAD_BYTES:
                future, done = ahead.popleft()
                in_flight -= done
                yield future.result()
        while ahead:
            yield ahead.popleft()[0].result()
