"""Move a model's Engram tables into a store and serve them from there."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from engram_sdk.engram.table import EmbeddingTable
from engram_sdk.errors import InputError
from engram_sdk.prefetch.store_table import PrefetchStats, StoreTable
from engram_sdk.stores import Store, open_store


def table_name(layer_id: int) -> str:
    """Store table holding Engram layer ``layer_id``."""
    return f"engram.layer{layer_id}"


def export_tables(model: torch.nn.Module, store: Any, chunk_rows: int = 1 << 16) -> None:
    """Write every GPU-resident Engram table of ``model`` into ``store`` (float32 rows)."""
    with store.transaction():
        for layer, table in model.engram_tables().items():
            if not isinstance(table, EmbeddingTable):
                raise InputError(
                    f"Engram layer {layer} has no rows on the model to export "
                    f"({type(table).__name__}); attach with export=False"
                )
            weight = table.embedding.weight.detach()
            name = table_name(layer)
            if name not in store.tables():
                store.create_table(name, weight.shape[0], weight.shape[1], "float32")
            for start in range(0, weight.shape[0], chunk_rows):
                part = weight[start : start + chunk_rows].float().cpu().numpy()
                store.scatter(name, np.arange(start, start + len(part)), part)


def attach_store_tables(
    model: torch.nn.Module,
    uri: str | Store,
    export: bool = True,
    cache_rows: int = 0,
    device: str | torch.device | None = None,
) -> tuple[Any, PrefetchStats]:
    """Serve every Engram layer of ``model`` from the store at ``uri`` (or an open store).

    With ``export`` the model's current tables are written there first; otherwise the store
    must already hold ``engram.layer<N>`` tables of the right shape. A ``dram://`` store
    opened here for a CUDA model keeps its rows in pinned memory. Returns the store and the
    shared :class:`PrefetchStats`.
    """
    device = torch.device(device or next(model.parameters()).device)
    if isinstance(uri, str):
        pinned = device.type == "cuda" and uri.startswith("dram://")  # dram:// only
        store = open_store(uri, "a" if export else "r", pinned=pinned)
    else:
        store = uri
    if export:
        export_tables(model, store)
    if cache_rows:
        from engram_sdk.stores import CachedStore

        store = CachedStore(store, cache_rows)
    stats = PrefetchStats()
    for layer in model.engram_tables():
        model.set_engram_table(layer, StoreTable(store, table_name(layer), device, stats))
    return store, stats


def prefetch_next(model: torch.nn.Module, input_ids: torch.Tensor) -> None:
    """Start fetching the rows of the batch after the current one (call before the current step).

    Host ids are hashed on the fetch thread, once: the model remembers the batch, so its
    forward recognises the prefetch and does not hash the ids again.
    """
    tables = model.engram_tables()
    if input_ids.device.type == "cpu":
        batch = model.host_batch(input_ids, remember=True)
        for layer, table in tables.items():
            if hasattr(table, "prefetch"):
                table.prefetch(batch.layer(layer))
        return
    addresses = model.engram_addresses(input_ids)
    for layer, table in tables.items():
        if hasattr(table, "prefetch"):
            table.prefetch(addresses[layer])


def wait_prefetches(model: torch.nn.Module) -> None:
    """Block until every started ``prefetch_next`` has gathered its rows (copies queued).

    For timing a fixed amount of work, or before the process does something the fetch
    threads should not compete with; lookups wait on their own otherwise.
    """
    for table in model.engram_tables().values():
        if hasattr(table, "wait_prefetches"):
            table.wait_prefetches()
