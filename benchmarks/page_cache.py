"""Disk benchmarks' probes: drop a store's files from the page cache, count what is resident
(``mincore``), and the bytes this process has read from block devices (Linux).

``/proc/self/io`` does not see every read (sandboxed kernels report 0), so the disk sections
measure what a block pulled from the drive as the store's pages resident after it, having
evicted them before it (``resident_bytes``), and check that eviction works at all
(``eviction_check``: random page reads right after evicting vs once cached).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import time
from pathlib import Path

import numpy as np

PAGE = mmap.PAGESIZE


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size)


def evict(folder: Path) -> None:
    """Drop the store's files from the page cache (fsync first: dirty pages stay).

    Pages this process has mapped (a store's ``mmap``) are unmapped first
    (``MADV_DONTNEED``; the next access faults them back in): the kernel does not drop
    mapped pages from the cache.
    """
    _unmap(folder)
    for path in _files(folder):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
    libc.mmap.argtypes += [ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def _unmap(folder: Path) -> None:
    """``madvise(MADV_DONTNEED)`` over this process's mappings of files under ``folder``."""
    maps = Path("/proc/self/maps")
    if not maps.exists() or not hasattr(mmap, "MADV_DONTNEED"):
        return
    libc = _libc()
    root = str(folder.resolve()) + os.sep
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(root):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            libc.madvise(start, end - start, mmap.MADV_DONTNEED)


def resident_bytes(folder: Path) -> int | None:
    """Bytes of the folder's files in the page cache (``mincore``); None where unsupported."""
    try:
        libc = _libc()
    except (OSError, AttributeError):
        return None
    total = 0
    for path in _files(folder):
        size = path.stat().st_size
        fd = os.open(path, os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                return None
            try:
                vec = np.zeros((size + PAGE - 1) // PAGE, dtype=np.uint8)
                if libc.mincore(addr, size, vec.ctypes.data) != 0:
                    return None
                total += int((vec & 1).sum()) * PAGE
            finally:
                libc.munmap(addr, size)
        finally:
            os.close(fd)
    return total


def eviction_check(folder: Path, pages: int = 2000, seed: int = 0) -> str:
    """One line: random page reads right after evicting vs again (cached), and residency."""
    files = _files(folder)
    rng = np.random.default_rng(seed)
    fds = [os.open(path, os.O_RDONLY) for path in files]
    try:
        sizes = [max(path.stat().st_size // PAGE, 1) for path in files]
        which = rng.integers(0, len(files), pages)
        picks = [(fds[i], int(rng.integers(0, sizes[i])) * PAGE) for i in which]

        def read_all() -> float:
            start = time.perf_counter()
            for fd, offset in picks:
                os.pread(fd, PAGE, offset)
            return (time.perf_counter() - start) / pages * 1e6

        evict(folder)
        after_evict = resident_bytes(folder)
        cold, warm = read_all(), read_all()
    finally:
        for fd in fds:
            os.close(fd)
    evict(folder)
    resident = "n/a" if after_evict is None else f"{after_evict / 2**20:.1f} MiB"
    verdict = "eviction works" if cold > 3 * warm else "EVICTION NOT EFFECTIVE: reads are cached"
    return (
        f"eviction check: random 4 KiB reads {cold:.1f} us after evicting vs {warm:.1f} us "
        f"cached; resident after evicting (mincore) {resident}; {verdict}"
    )


def read_bytes() -> int:
    """Bytes this process has read from block devices (``/proc/self/io``; 0 elsewhere)."""
    io = Path("/proc/self/io")
    if not io.exists():
        return 0
    for line in io.read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return 0


def meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in bytes (empty where there is none)."""
    info = Path("/proc/meminfo")
    if not info.exists():
        return {}
    out = {}
    for line in info.read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def memory_line(label: str) -> str:
    """One line of the /proc/meminfo fields that say what the page cache can hold."""
    info = meminfo()
    fields = ("MemTotal", "MemAvailable", "Cached", "Unevictable", "Mlocked")
    return f"{label}: " + ", ".join(f"{k} {info.get(k, 0) / 2**30:.1f} GiB" for k in fields)


def io_counters() -> dict[str, int]:
    """Bytes read from drives: this process's major page faults x the page size (mapped
    reads), the system's ``pgpgin`` (/proc/vmstat, KiB paged in from block devices, every
    process), and ``/proc/self/io`` read_bytes (0 on kernels that hide it)."""
    import resource

    vmstat = Path("/proc/vmstat")
    pgpgin = 0
    if vmstat.exists():
        for line in vmstat.read_text().splitlines():
            if line.startswith("pgpgin "):
                pgpgin = int(line.split()[1]) * 1024
    majflt = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
    return {"major faults x page": majflt * PAGE, "pgpgin": pgpgin, "read_bytes": read_bytes()}


class Ballast:
    """Host memory locked in RAM until only ``leave`` bytes stay available (at most
    ``limit``), in 1 GiB chunks: ``mlock`` on anonymous memory where the process may lock
    it (``Mlocked`` in /proc/meminfo then shows it; chunks locked by parallel threads:
    faulting 100 GiB in from one thread takes minutes; no huge-page advice, whose
    compaction was slower still),
    else CUDA's page-locked ``cudaHostAlloc``. Either way the kernel can neither reclaim nor
    swap it, so the page cache has at most what is left. ``how`` says which was used;
    :meth:`release` gives it back."""

    CHUNK = 1 << 30
    THREADS = 16

    def __init__(self, leave: int, limit: int | None = None) -> None:
        self.chunks: list = []
        self.error = ""
        self.how = "mlock"
        want = meminfo().get("MemAvailable", 0) - leave
        want = want if limit is None else min(want, limit)  # e.g. a smoke run on a shared box
        count = max(want, 0) // self.CHUNK
        if count and self._lock() is not None:  # the first alone: is mlock allowed at all?
            self._lock_many(count - 1)
        elif count:
            self.how = "cudaHostAlloc"
            for _ in range(count):
                chunk = self._host_alloc()
                if chunk is None:
                    break
                self.chunks.append(chunk)

    def _lock(self) -> mmap.mmap | None:
        """One chunk locked with mlock (kept in ``chunks``), or None (``error`` says why)."""
        region = mmap.mmap(-1, self.CHUNK, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        view = ctypes.c_char.from_buffer(region)
        address = ctypes.addressof(view)
        locked = libc.mlock(address, self.CHUNK) == 0
        if not locked:
            self.error = f"mlock: {os.strerror(ctypes.get_errno())}"
        del view  # (a live view would keep the mapping from closing)
        if not locked:
            region.close()
            return None
        self.chunks.append(region)
        return region

    def _lock_many(self, count: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.THREADS) as pool:  # ctypes calls release the GIL
            list(pool.map(lambda _: self._lock(), range(count)))

    def _host_alloc(self):
        import torch

        try:
            return torch.empty(self.CHUNK, dtype=torch.uint8, pin_memory=True)
        except RuntimeError as exc:  # no CUDA, or the driver refused: said in the output
            self.error = str(exc).splitlines()[0]
            return None

    @property
    def pinned(self) -> int:
        return len(self.chunks) * self.CHUNK

    def release(self) -> None:
        import torch

        for chunk in self.chunks:
            if isinstance(chunk, mmap.mmap):
                chunk.close()  # unmapping unlocks
        self.chunks.clear()
        if self.how == "cudaHostAlloc" and torch.cuda.is_available():
            torch.cuda.synchronize()
            empty = getattr(torch._C, "_host_emptyCache", None)  # (private; not in every torch)
            if empty is not None:
                empty()  # the caching host allocator keeps freed blocks otherwise
