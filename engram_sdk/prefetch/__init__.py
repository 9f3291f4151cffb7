"""Engram tables served from stores: prefetch, overlap with compute, statistics."""

from engram_sdk.prefetch.attach import attach_store_tables, export_tables, prefetch_next, table_name
from engram_sdk.prefetch.store_table import PrefetchStats, StoreTable

__all__ = [
    "PrefetchStats",
    "StoreTable",
    "attach_store_tables",
    "export_tables",
    "prefetch_next",
    "table_name",
]
