"""Engram tables served from stores: prefetch, overlap with compute, statistics."""

from engram_sdk.prefetch.attach import (
    attach_store_tables,
    export_tables,
    prefetch_next,
    table_name,
    wait_prefetches,
)
from engram_sdk.prefetch.store_table import PrefetchStats, StoreTable
from engram_sdk.prefetch.train import StoreTableOptimizer, TrainableStoreTable, make_trainable

__all__ = [
    "PrefetchStats",
    "StoreTable",
    "StoreTableOptimizer",
    "TrainableStoreTable",
    "attach_store_tables",
    "export_tables",
    "make_trainable",
    "prefetch_next",
    "table_name",
    "wait_prefetches",
]
