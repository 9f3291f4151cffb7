"""The single-writer lock: an ``flock`` on ``writer.lock`` that records who holds it.

The kernel drops an ``flock`` when its holder dies, so a killed writer never leaves a
stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from engram_sdk.stores.errors import StoreError, StoreLockedError, StoreReadOnlyError


class WriterLock:
    """Exclusive, non-blocking writer lock on ``folder/writer.lock``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "writer.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreLockedError` naming the holder."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise StoreLockedError(
                f"store {self.path.parent} is locked by {holder}; one writer at a time "
                f"(open it with mode 'r' to read while it writes)"
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

    @staticmethod
    def _read_holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        except (ValueError, KeyError, OSError):
            return "another process"

    def release(self) -> None:
        """Drop the lock."""
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
            f"cannot write the store at {path}: {exc.strerror}; open it with mode 'r' to read"
        )
    return StoreError(f"cannot write the store at {path}: {exc.strerror}")
