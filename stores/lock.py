"""The single-writer lock: an ``flock`` on ``writer.lock`` that records who holds it.

The kernel drops an ``flock`` when its holder dies, so a killed writer never leaves a
stale lock behind. A forked child (multiprocessing, DataLoader workers) closes its copy of
the lock's descriptor at once, so the lock never outlives the process that took it, and the
child cannot write through the store it inherited.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
import weakref
from pathlib import Path

from engram_sdk.stores.errors import (
    StoreError,
    StoreFullError,
    StoreIOError,
    StoreLockedError,
    StoreReadOnlyError,
)

_HELD: weakref.WeakSet[WriterLock] = weakref.WeakSet()


def _drop_inherited_locks() -> None:
    for lock in list(_HELD):
        lock._forget_in_child()


os.register_at_fork(after_in_child=_drop_inherited_locks)


class WriterLock:
    """Exclusive, non-blocking writer lock on ``folder/writer.lock``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "writer.lock"
        self._fd: int | None = None
        self._owner_pid: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreLockedError` naming the holder."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise StoreLockedError(
                f"store {self.path.parent} is locked by {holder}; one writer at a time "
                f"(open it with mode 'r' to read while it writes)",
                path=self.path,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }
            ).encode(),
            0,
        )
        self._fd = fd
        self._owner_pid = os.getpid()
        _HELD.add(self)

    @staticmethod
    def _read_holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        except (ValueError, KeyError, TypeError, OSError):
            return "another process"

    def _forget_in_child(self) -> None:
        # Only close our copy: LOCK_UN would release the parent's lock (same open file).
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def check_owner(self) -> None:
        """Raise unless this process is the one that took the lock (not a forked child)."""
        if self._owner_pid is not None and self._owner_pid != os.getpid():
            raise StoreLockedError(
                f"store {self.path.parent} was opened for writing by pid {self._owner_pid}; "
                f"this forked child (pid {os.getpid()}) cannot write through it: open the "
                f"store again in the child (mode 'r' to read)",
                path=self.path,
            )

    def release(self) -> None:
        """Drop the lock."""
        _HELD.discard(self)
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def make_writable_dir(path: Path) -> None:
    """``mkdir -p path``, with a clear store error when it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from exc


def write_error(path: Path, exc: OSError) -> StoreError:
    """The store error for an OS error met while preparing to write at ``path``."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnlyError(
            f"cannot write the store at {path}: {exc.strerror}; open it with mode 'r' to read",
            path=path,
        )
    return os_store_error(str(path), exc)


def os_store_error(store: str, exc: OSError) -> StoreError:
    """The store error for an OS error met while committing to ``store``."""
    where = exc.filename or store
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFullError(
            f"no space left to commit to {store} (writing {where}); nothing of this commit "
            f"was kept: free space and retry",
            path=where,
        )
    return StoreIOError(
        f"cannot commit to {store}: {exc.strerror or exc} (at {where}); nothing of this "
        f"commit was kept",
        path=where,
    )
