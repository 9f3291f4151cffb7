"""Group commit: the session writes of many requests in one store transaction.

A server storing each reply's turns commits (and syncs to disk) once per request. Here one
writer thread takes every write waiting when its last commit ended, runs each inside a
savepoint of one transaction, and commits them together: one sync for the lot. A write that
raises is undone alone (its savepoint) and reported to its caller; the others commit.

Durability is unchanged for the caller: :meth:`GroupCommit.submit` returns a future that
completes once the write is committed (or failed), and the server sends a reply's end only
after that, so a client's next turn always sees this one, and a reply a client saw complete
survives a crash (``SIGKILL``) of the server. Writes commit in the order they were submitted.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engram_sdk.memory import Memory

_STOP = object()


class GroupCommit:
    """One writer thread committing queued writes to ``memory`` in batches of at most
    ``max_batch``; ``lock`` (if given) is held around each batch, to serialise with other
    writers of the same memory."""

    def __init__(
        self,
        memory: Memory,
        *,
        lock: AbstractContextManager[Any] | None = None,
        max_batch: int = 64,
    ) -> None:
        self.memory = memory
        self.lock = lock if lock is not None else nullcontext()
        self.max_batch = max_batch
        self.commits = self.writes = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[], None]) -> Future[None]:
        """Queue ``write`` (it writes through the memory); the future completes once it is
        committed, or with the exception it raised (then none of its writes are kept)."""
        done: Future[None] = Future()
        with self._guard:
            if self._closed:
                raise RuntimeError("the group commit is closed")
            self._queue.put((write, done))
        return done

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = [first], False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Callable[[], None], Future[None]]]) -> None:
        kept: list[Future[None]] = []
        try:
            with self.lock, self.memory.transaction():
                for write, done in batch:
                    try:
                        with self.memory.transaction():  # a savepoint: undone alone
                            write()
                    except Exception as exc:
                        done.set_exception(exc)
                    else:
                        kept.append(done)
        except BaseException as exc:  # the commit itself failed: nothing was kept
            for done in kept:
                done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.commits += 1
        self.writes += len(kept)
        for done in kept:
            done.set_result(None)
