"""Searches of one :class:`~engram_sdk.memory.memory.Memory` beside its writes, in one process.

A write changes the index's in-process view (its scope tables and caches) step by step inside
its transaction; a search on another thread that refreshed the view meanwhile could publish
the committed, older table over the writer's, and every later refresh would skip the reread
(the store's commit counter had not moved): the process kept answering from the old table.
So writes hold the gate alone (reentrant on the writing thread, as writes nest), searches
hold it together, a waiting write goes before new searches, and the writing thread's own
searches pass through.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType


class WriteGate:
    """One writer (reentrant) or many readers; ``with gate:`` writes, ``gate.reading()``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None
        self._depth = 0
        self._writers_waiting = 0
        self._held = threading.local()  # this thread's reads held (a nested read passes)

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._depth += 1
                return
            self._writers_waiting += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer, self._depth = me, 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._cond:
            self._depth -= 1
            if not self._depth:
                self._writer = None
                self._cond.notify_all()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Held while a search reads; waits while another thread writes (a read nested in one
        this thread holds passes, so a waiting writer cannot deadlock it)."""
        depth = getattr(self._held, "depth", 0)
        with self._cond:
            passes = depth > 0 or self._writer == threading.get_ident()
            if not passes:
                while self._writer is not None or self._writers_waiting:
                    self._cond.wait()
                self._readers += 1
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if not passes:
                with self._cond:
                    self._readers -= 1
                    if not self._readers:
                        self._cond.notify_all()
