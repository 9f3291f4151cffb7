"""Seeded corruptions of a store's files, and a reader run in a forked child to survive them."""

from __future__ import annotations

import os
import random
import signal
import traceback
from collections.abc import Callable
from pathlib import Path

#: what the child's exit status means
CORRECT, NAMED_ERROR, WRONG_DATA, OTHER_ERROR, UNNAMED_ERROR = 0, 3, 4, 5, 6
KINDS = ("flip", "flip", "flip", "truncate", "zero_page", "append", "delete", "manifest_edit")


def data_files(folder: Path) -> list[Path]:
    """The files a corruption may hit: everything but the lock files."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name not in ("lock.mdb", "writer.lock") and p.stat().st_size
    )


def corrupt(folder: Path, seed: int) -> str:
    """Apply one seeded corruption to the store in ``folder``; returns what was done."""
    rng = random.Random(seed)
    files = data_files(folder)
    kind = KINDS[seed % len(KINDS)]
    manifest = folder / "manifest.json"
    if kind == "manifest_edit" and not manifest.exists():
        kind = "flip"
    # weight by size for flips and pages ("across the whole store"), uniform otherwise
    sizes = [p.stat().st_size for p in files]
    target = (
        rng.choices(files, weights=sizes)[0] if kind in ("flip", "zero_page") else rng.choice(files)
    )
    size = target.stat().st_size
    data = bytearray(target.read_bytes())
    if kind == "flip":
        at, bit = rng.randrange(size), rng.randrange(8)
        data[at] ^= 1 << bit
        what = f"flip bit {bit} at {at}"
    elif kind == "truncate":
        at = rng.randrange(size)
        del data[at:]
        what = f"truncate at {at}"
    elif kind == "zero_page":
        page = rng.randrange(max(1, size // 4096))
        data[page * 4096 : (page + 1) * 4096] = bytes(len(data[page * 4096 : (page + 1) * 4096]))
        what = f"zero page {page}"
    elif kind == "append":
        n = rng.randrange(1, 8192)
        data += rng.randbytes(n)
        what = f"append {n} bytes"
    elif kind == "delete":
        target.unlink()
        return f"delete {target.relative_to(folder)}"
    else:
        target = manifest
        data = bytearray(target.read_bytes())
        at = rng.randrange(len(data))
        data[at] = ord(rng.choice('0123456789abcdef",:{}[] tx'))
        what = f"manifest byte {at} -> {chr(data[at])!r}"
    target.write_bytes(bytes(data))
    return f"{target.relative_to(folder)}: {what}"


def run_in_child(
    read: Callable[..., tuple[int, str]], *args: object, timeout_s: int = 120
) -> tuple[int, str]:
    """Run ``read(*args)`` in a forked child; its exit status (negative: killed by that signal)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        signal.alarm(timeout_s)  # a hung reader dies by SIGALRM and the test reports it
        try:
            code, message = read(*args)
        except BaseException:
            code, message = OTHER_ERROR, traceback.format_exc()
        os.write(w, message.encode(errors="replace")[-8000:])
        os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return code, b"".join(chunks).decode(errors="replace")


def _start_child(job: Callable[[], tuple[int, str]], timeout_s: int) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        signal.alarm(timeout_s)
        try:
            code, message = job()
        except BaseException:
            code, message = OTHER_ERROR, traceback.format_exc()
        os.write(w, message.encode(errors="replace")[-8000:])  # fits a pipe: never blocks
        os._exit(code)
    os.close(w)
    return pid, r


def run_in_children(
    jobs: dict[int, Callable[[], tuple[int, str]]],
    *,
    parallel: int | None = None,
    timeout_s: int = 120,
) -> dict[int, tuple[int, str]]:
    """Run each job in its own forked child, ``parallel`` at a time (default: every core).

    Same outcome per job as :func:`run_in_child`, keyed like ``jobs``; independent seeds of a
    sweep run side by side instead of one after another.
    """
    parallel = parallel or len(os.sched_getaffinity(0))
    pending = list(jobs.items())
    running: dict[int, tuple[int, int]] = {}  # pid -> (key, read end)
    results: dict[int, tuple[int, str]] = {}
    while pending or running:
        while pending and len(running) < parallel:
            key, job = pending.pop(0)
            pid, r = _start_child(job, timeout_s)
            running[pid] = (key, r)
        pid, status = os.wait()
        if pid not in running:
            continue
        key, r = running.pop(pid)
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        results[key] = (code, b"".join(chunks).decode(errors="replace"))
    return results


def classify(exc: BaseException, folder: Path) -> tuple[int, str]:
    """A store error that names a file of the store is what a corruption must produce."""
    from engram_sdk.stores import StoreError

    if isinstance(exc, StoreError):
        named = exc.path is not None and exc.path.startswith(str(folder)) and exc.path in str(exc)
        return (NAMED_ERROR if named else UNNAMED_ERROR), f"{type(exc).__name__}: {exc}"
    return OTHER_ERROR, "".join(traceback.format_exception(exc))


def lmdb_tree_pages(path: Path, page_size: int = 4096) -> list[int]:
    """Pages of ``data.mdb`` that are meta, branch or leaf pages (their header names them)."""
    import struct

    raw = path.read_bytes()
    pages = []
    for p in range(len(raw) // page_size):
        pgno, _pad, flags = struct.unpack_from("<QHH", raw, p * page_size)
        if pgno == p and flags & 0x0B and not flags & 0x04:  # branch/leaf/meta, not overflow
            pages.append(p)
    return pages


def corrupt_lmdb_tree(folder: Path, seed: int) -> str:
    """Flip a bit in (or, one seed in four, zero) a B-tree page of ``data.mdb``."""
    rng = random.Random(seed)
    path = folder / "data.mdb"
    page = rng.choice(lmdb_tree_pages(path))
    data = bytearray(path.read_bytes())
    if seed % 4 == 0:
        data[page * 4096 : (page + 1) * 4096] = bytes(4096)
        what = f"zero tree page {page}"
    else:
        at, bit = page * 4096 + rng.randrange(4096), rng.randrange(8)
        data[at] ^= 1 << bit
        what = f"flip bit {bit} at {at} (tree page {page})"
    path.write_bytes(bytes(data))
    return what
