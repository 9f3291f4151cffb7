"""One fetch of a table's rows: run on the shared worker pool, or on the calling thread.

At most ``FETCH_SLOTS`` fetches run at once, each with its own number of torch threads: a
fetch the step waits for gets a share of the cores, leaving two for the thread that
launches GPU work (oversubscribed cores delay kernel launches, which costs more than the
fetch saves). Prefetches get the same share by default: on the H100 host fewer threads left
the next step waiting for its rows more than they relieved the launching thread
(benchmarks/prefetch_gpu_breakdown.py compares 1, 2 and 3).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from engram_sdk.table_runtime.addresses import LayerAddresses
from engram_sdk.workers import submit

FETCH_SLOTS = 4
FETCH_THREADS = max(1, ((os.cpu_count() or 1) - 2) // FETCH_SLOTS)
PREFETCH_THREADS = FETCH_THREADS
_SLOTS = threading.BoundedSemaphore(FETCH_SLOTS)
_THREADS_SET = threading.local()  # the torch thread count each pool thread was given


@dataclass
class FetchedRows:
    """One fetch: the store rows read (``ids``), on the device, and how to expand them."""

    ids: torch.Tensor  # CPU int64 row ids read, in the order of ``rows``
    rows: torch.Tensor  # (len(ids), dim) on the table's device
    inverse: torch.Tensor | None  # positions in ``rows`` of each requested address (dedup)
    event: Any  # CUDA event recorded after the copy, or None
    staging: torch.Tensor = field(repr=False)  # pinned source of the copy, kept alive


def _in_slot(threads: int, fn: Callable[..., FetchedRows], args: tuple) -> FetchedRows:
    """Run ``fn`` on a pool thread with ``threads`` torch threads, in one of the fetch slots."""
    with _SLOTS:
        if getattr(_THREADS_SET, "count", None) != threads:
            torch.set_num_threads(threads)  # per thread: this pool thread's own ops
            _THREADS_SET.count = threads
        return fn(*args)


@dataclass
class Fetch:
    """A fetch, handed to the worker pool now or (a prefetch) once the step has launched."""

    key: torch.Tensor | LayerAddresses  # what prepare() compares to recognise a prefetch
    work: Any = field(repr=False)  # (function, args) until submitted
    threads: int = FETCH_THREADS  # torch threads of the worker that runs it
    future: Future[FetchedRows] | None = field(default=None, repr=False)

    def submit(self) -> Fetch:
        """Hand the fetch to the pool (once); hashing starts here, on the caller's thread."""
        if self.future is None:
            if isinstance(self.key, LayerAddresses):
                self.key.batch.start()  # on the model's thread, in stream order
            fn, args = self.work
            self.future = submit(_in_slot, self.threads, fn, args)
        return self

    def run_here(self) -> Fetch:
        """Fetch on the calling thread (small steps: no hand-off to wait for)."""
        if isinstance(self.key, LayerAddresses):
            self.key.batch.start()
        fn, args = self.work
        self.future = Future()
        try:
            self.future.set_result(fn(*args))
        except Exception as exc:  # raised where the rows are looked up, as from a worker
            self.future.set_exception(exc)
        return self

    def result(self) -> FetchedRows:
        """The rows (submitting the fetch first if nobody has)."""
        return self.submit().future.result()  # type: ignore[union-attr]

    def matches(self, addresses: torch.Tensor | LayerAddresses) -> bool:
        """True if ``addresses`` are the ones this fetch was started for."""
        if isinstance(self.key, LayerAddresses):
            return self.key.same_batch(addresses)
        return (
            isinstance(addresses, torch.Tensor)
            and self.key.shape == addresses.shape
            and torch.equal(self.key, addresses)
        )
