"""Errors of the storage layer; each names the store, file or input at fault."""

from engram_sdk.errors import EngramError, InputError


class StoreError(EngramError):
    """Base class of storage errors."""


class StoreLockedError(StoreError):
    """Another process holds the store's writer lock."""


class StoreCorruptError(StoreError):
    """A file of the store fails its checksum, is truncated, missing or not ours."""


class StoreVersionError(StoreError):
    """The store was written by a newer format version than this SDK reads."""


class StoreReadOnlyError(StoreError):
    """A write was attempted on a store opened read-only."""


__all__ = [
    "InputError",
    "StoreCorruptError",
    "StoreError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "StoreVersionError",
]
