"""Errors of the storage layer; each names the store, file or input at fault.

Every store error carries fields a caller can branch on without parsing the message:
``path`` (the file or folder at fault), ``offset`` (the byte offset of the problem in that
file, when known) and ``expected`` (what was expected there, when it helps).
"""

from __future__ import annotations

from pathlib import Path

from engram_sdk.errors import EngramError, InputError


class StoreError(EngramError):
    """Base class of storage errors."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        offset: int | None = None,
        expected: object = None,
    ) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.offset = offset
        self.expected = expected


class StoreLockedError(StoreError):
    """Another process holds the store's writer lock."""


class StoreCorruptError(StoreError):
    """A file of the store fails its checksum, is truncated, missing or not ours."""


class StoreVersionError(StoreError):
    """The store was written by a newer format version than this SDK reads."""


class StoreReadOnlyError(StoreError):
    """A write was attempted on a store opened read-only."""


class StoreFullError(StoreError):
    """The filesystem holding the store is full (or over quota); nothing was committed."""


class StoreIOError(StoreError):
    """The operating system failed a read or write of the store; nothing was committed."""


__all__ = [
    "InputError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreIOError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "StoreVersionError",
]
