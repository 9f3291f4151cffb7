"""A model answering on every core: one copy of it per worker process.

A local reader answers one sample at a time (one llama.cpp context, one torch model), and
the memory pipeline ingests each haystack on one core. :class:`ProcessPoolAdapter` builds
the adapter once in each of ``processes`` worker processes (from a picklable ``factory``)
and hands samples to whichever is free; the runner drives it with ``processes`` threads, so
caching, scoring and progress stay as they are.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from engram_sdk.evals.protocol import Adapter, Answer, BaseAdapter, as_adapter
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import InputError

_READER: Adapter | None = None


def _build(factory: Callable[[], Adapter]) -> None:
    global _READER
    _READER = as_adapter(factory())


def _answer(sample: Sample) -> Answer:
    assert _READER is not None, "worker started without its reader"
    out = _READER.answer(sample)
    ans = out if isinstance(out, Answer) else Answer(str(out))
    return Answer(ans.text, {**ans.info, "process": os.getpid()})


class ProcessPoolAdapter(BaseAdapter):
    """``factory()`` answering in ``processes`` worker processes; ``like`` (an adapter built
    the same way in this process) gives the name, window and token counting."""

    def __init__(self, factory: Callable[[], Adapter], processes: int, *, like: Adapter) -> None:
        if processes < 1:
            raise InputError(f"processes must be >= 1, got {processes}")
        like = as_adapter(like)
        self.name, self.max_context = like.name, like.max_context
        self.token_counter, self.template_tokens = like.token_counter, like.template_tokens
        self.concurrency = processes
        # spawned, not forked: the parent may hold model threads that fork would not carry
        self._pool = ProcessPoolExecutor(
            processes, mp_context=mp.get_context("spawn"), initializer=_build, initargs=(factory,)
        )

    def answer(self, sample: Sample) -> Answer:
        return self._pool.submit(_answer, sample).result()

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> ProcessPoolAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
