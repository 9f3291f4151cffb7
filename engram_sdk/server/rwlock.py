"""Reads of the memory beside its writes, in one server process.

A ``Memory`` reads its index in several store reads (the scope's segment table, then each
segment), each its own snapshot; a write committed between them (a session turn's passages,
whose segments the index then merges) can leave a search holding a table that names a
segment no longer stored ("index segment N of scope S is missing"). Under load, with
recalls on the pool and session turns committing, that failed requests mid-reply. So the
server's recalls and memory reads hold :attr:`ReadWriteLock.read` (many at once) and its
writes :attr:`ReadWriteLock.write` (alone); a waiting writer goes before new readers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType


class ReadWriteLock:
    """Many readers or one writer; writers are not starved by a stream of readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self.read = _Side(self._acquire_read, self._release_read)
        self.write = _Side(self._acquire_write, self._release_write)

    def _acquire_read(self) -> None:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def _release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def _acquire_write(self) -> None:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True

    def _release_write(self) -> None:
        with self._cond:
            self._writing = False
            self._cond.notify_all()


class _Side:
    """One side of the lock, a context manager (``with lock.read:``)."""

    def __init__(self, acquire: Callable[[], None], release: Callable[[], None]) -> None:
        self._acquire, self._release = acquire, release

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()
