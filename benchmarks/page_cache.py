"""Disk benchmarks' two probes: drop a store's files from the page cache, and count the bytes
this process has read from block devices (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def evict(folder: Path) -> None:
    """Drop the store's files from the page cache (fsync first: dirty pages stay)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def read_bytes() -> int:
    """Bytes this process has read from block devices (``/proc/self/io``; 0 elsewhere)."""
    io = Path("/proc/self/io")
    if not io.exists():
        return 0
    for line in io.read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return 0
