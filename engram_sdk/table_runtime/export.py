"""Write a model's in-memory Engram tables into a store, one store table per layer."""

from __future__ import annotations

import numpy as np

from engram_sdk.engram.table import EmbeddingTable
from engram_sdk.errors import InputError
from engram_sdk.model.transformer import Transformer
from engram_sdk.stores.base import Store


def table_name(layer_id: int) -> str:
    """Store table holding Engram layer ``layer_id``."""
    return f"engram.layer{layer_id}"


def export_tables(model: Transformer, store: Store, *, chunk_rows: int = 1 << 16) -> None:
    """Write every in-memory Engram table of ``model`` into ``store`` (float32 rows)."""
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
