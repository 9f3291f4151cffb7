"""engram_sdk.stores: one storage layer (row tables + records) with DRAM, LMDB and shard backends."""

from engram_sdk.stores.base import Store
from engram_sdk.stores.cache import CachedStore
from engram_sdk.stores.convert import copy_store, verify_copy
from engram_sdk.stores.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIOError,
    StoreLockedError,
    StoreReadOnlyError,
    StoreVersionError,
)
from engram_sdk.stores.models import StoreInfo, TableSpec, VerifyReport
from engram_sdk.stores.uri import open_store, parse_uri

__all__ = [
    "CachedStore",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreIOError",
    "StoreInfo",
    "StoreLockedError",
    "StoreReadOnlyError",
    "StoreVersionError",
    "TableSpec",
    "VerifyReport",
    "copy_store",
    "open_store",
    "parse_uri",
    "verify_copy",
]
