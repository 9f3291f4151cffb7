"""The table runtime: Engram rows from stores (DRAM, LMDB, shards), applied to a model from outside.

``runtime = attach_tables(model, "shards:///data/tables")`` swaps every Engram layer's table
for one served from the store; ``runtime(ids, cache)`` steps the model with its rows
fetched ahead, ``runtime.prefetch(next_ids)`` loads the next step's rows meanwhile,
``runtime.stats`` counts what moved, ``runtime.detach()`` gives the model its tables back;
``graph_decode(runtime, cache)`` replays decode steps as one CUDA graph, rows read inside it;
``generate_batch(runtime, prompts, n)`` decodes with those graphs.
See docs/table_runtime.md.
"""

from engram_sdk.table_runtime.addresses import BatchAddresses, HostHasher, LayerAddresses
from engram_sdk.table_runtime.export import export_tables, table_name
from engram_sdk.table_runtime.fetch import FETCH_THREADS, PREFETCH_THREADS, FetchedRows
from engram_sdk.table_runtime.fp8_table import Fp8StoreTable
from engram_sdk.table_runtime.generation import generate_batch
from engram_sdk.table_runtime.graph import GraphedDecode, graph_blocker, graph_decode
from engram_sdk.table_runtime.runtime import TableRuntime, attach_tables
from engram_sdk.table_runtime.stats import TableStats
from engram_sdk.table_runtime.store_table import StoreTable
from engram_sdk.table_runtime.train import StoreTableOptimizer, TrainableStoreTable

__all__ = [
    "FETCH_THREADS",
    "PREFETCH_THREADS",
    "BatchAddresses",
    "FetchedRows",
    "Fp8StoreTable",
    "GraphedDecode",
    "HostHasher",
    "LayerAddresses",
    "StoreTable",
    "StoreTableOptimizer",
    "TableRuntime",
    "TableStats",
    "TrainableStoreTable",
    "attach_tables",
    "export_tables",
    "generate_batch",
    "graph_blocker",
    "graph_decode",
    "table_name",
]
