"""LMDB errors as store errors, and the truncation check at open and at each new snapshot."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import lmdb
from engram_sdk.stores.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIOError,
)

#: a commit that fails with less free space than this is reported as "disk full"
FULL_MARGIN = 64 << 20


def _last_page_end(env: lmdb.Environment) -> int:
    return (env.info()["last_pgno"] + 1) * env.stat()["psize"]


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise StoreCorruptError(f"{path} is missing: {exc.strerror}", path=path) from exc


def cover_last_page(env: lmdb.Environment, path: Path) -> None:
    """Writer, right after a commit: extend ``data.mdb`` to the last page number LMDB handed out.

    LMDB can end a commit with its highest page numbers allocated but never written (pages
    freed again inside the transaction), leaving the file shorter than the meta page's
    ``last_pgno`` says. Those pages are never read, but the truncation check could not tell
    them from a cut file; extending with zeros keeps the invariant the check relies on.
    """
    need = _last_page_end(env)
    if _size(path) < need:
        os.truncate(path, need)


def check_file_size(env: lmdb.Environment, path: Path, *, retries: int = 3) -> None:
    """Raise if ``data.mdb`` ends before the last page of the snapshot its meta page names.

    LMDB maps the file and would read the missing pages as a SIGBUS, killing the process.
    A short file is looked at again a few times first: a writer extends it just after its
    commit (:func:`cover_last_page`), so a reader may catch it in between.
    """
    need = _last_page_end(env)
    size = _size(path)
    for _ in range(retries):
        if size >= need:
            return
        time.sleep(0.02)
        size = _size(path)
    if size < need:
        raise StoreCorruptError(
            f"{path} is truncated: {size} bytes, but its last committed page ends at byte {need}",
            path=path,
            offset=size,
            expected=need,
        )


def lmdb_error(path: Path, exc: lmdb.Error) -> StoreError:
    """The store error for an LMDB error met while opening or reading ``path``."""
    corrupt = lmdb.CorruptedError | lmdb.PageNotFoundError | lmdb.InvalidError | lmdb.BadTxnError
    if isinstance(exc, corrupt):
        return StoreCorruptError(f"{path} is corrupt: LMDB says {exc}", path=path)
    if isinstance(exc, lmdb.DiskError | lmdb.PanicError):
        return StoreIOError(f"cannot read {path}: LMDB says {exc}", path=path)
    return StoreError(f"cannot use {path}: LMDB says {exc}", path=path)


def commit_error(uri: str, folder: Path, exc: lmdb.Error) -> StoreError:
    """The store error for a failed LMDB commit (LMDB often reports ENOSPC as EIO)."""
    try:
        st = os.statvfs(folder)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    message = str(exc)
    if (free is not None and free < FULL_MARGIN) or os.strerror(errno.ENOSPC) in message:
        return StoreFullError(
            f"no space left to commit to {uri} ({free} bytes free in {folder}); nothing of "
            f"this commit was kept: free space and retry (reopen the store if it says so)",
            path=folder / "data.mdb",
        )
    return StoreIOError(
        f"cannot commit to {uri}: LMDB says {message}; nothing of this commit was kept",
        path=folder / "data.mdb",
    )
