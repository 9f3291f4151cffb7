"""The process's one pool of worker threads, shared by store gathers and table fetches.

Stores split big row copies and disk reads over it; the table runtime runs its fetches on
it. A fetch that gathers from a store submits parts to the same pool it runs on, so
:func:`run_parts` never waits for a part no worker has started: the caller runs those
itself, and nested use cannot deadlock however busy the pool is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

# Rows read from disk wait on page faults: many reads in flight keep the drive busy.
POOL_THREADS = 32

T = TypeVar("T")
R = TypeVar("R")

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def worker_pool() -> ThreadPoolExecutor:
    """The shared pool (``POOL_THREADS`` threads, started on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="engram")
        return _POOL


def submit(fn: Callable[..., R], *args: object) -> Future[R]:
    """Run ``fn(*args)`` on the shared pool."""
    return worker_pool().submit(fn, *args)


def run_parts(fn: Callable[[T], object], parts: Sequence[T]) -> None:
    """``fn(part)`` for every part, spread over the pool; returns when all are done.

    The caller runs the first part, then every part no worker has started yet; the first
    error raised by any part is raised here once all have finished.
    """
    if len(parts) <= 1:
        for part in parts:
            fn(part)
        return
    futures = [(worker_pool().submit(fn, part), part) for part in parts[1:]]
    errors: list[BaseException] = []
    try:
        fn(parts[0])
    except BaseException as exc:  # re-raised below, after the other parts
        errors.append(exc)
    for future, part in futures:
        if future.cancel():  # not started: this thread runs it
            try:
                fn(part)
            except BaseException as exc:
                errors.append(exc)
        elif (exc := future.exception()) is not None:
            errors.append(exc)
    if errors:
        raise errors[0]
