"""Lay an Engram table out by N-gram frequency and put a hot-row cache in front of it.

Run: python examples/table_speed.py [folder]   (default: a temporary folder)

1. Count which rows real text reads (Python's own ``email`` package, hashed by the model).
2. Write the table in that order into a ``shards://`` store, with the layout kept beside it;
   ``LaidOutStore`` serves it under its original name, rows unchanged.
3. Serve later text's rows through a ``HotRowCache``: hits come from the cache's device
   memory, misses from the store. Both stay bitwise equal to the model's own table.
"""

import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
import torch
from engram_sdk.model import build_model, get_preset
from engram_sdk.stores import open_store
from engram_sdk.stores.laid_out import LaidOutStore
from engram_sdk.stores.row_layout import save_layout

from engram_sdk.corpus import read_token_ids
from engram_sdk.table_runtime.hot_cache import HotRowCache
from engram_sdk.table_runtime.layout import layouts_from_text, pages_touched

folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
model = build_model(get_preset("tiny", tokenizer=None, engram_table_size=[100_003, 100_003]))
layer, table = next(iter(model.engram_tables().items()))
weight = table.embedding.weight.detach()  # the rows the model reads, (rows, dim) float32
text = read_token_ids([Path(sysconfig.get_paths()["stdlib"]) / "email"])
counted, later = text[:40_000], text[40_000:60_000]

# 1-2. A frequency layout counted on real text, written with the table (one commit).
layout = layouts_from_text(model, counted)[layer]
with open_store(f"shards://{folder / 'tables'}", "w") as store:
    store.create_table("engram.layer1", table.rows, table.dim)
    store.scatter("engram.layer1", np.arange(table.rows), weight.numpy())
    info = save_layout(store, "engram.layer1", layout, source="stdlib email package")
print(f"layout: {info.hot_rows} of {info.rows} rows moved to the front (checksum {info.checksum})")

# 3. Later text, batch by batch: rows through the cache, misses from the laid-out store.
addresses = model.engram_addresses(torch.from_numpy(later)[None])[layer][0]
with LaidOutStore(open_store(f"shards://{folder / 'tables'}", "r")) as store:
    cache = HotRowCache(4096, table_rows=table.rows, dim=table.dim)
    plain_pages = laid_pages = 0
    for start in range(0, len(later), 2000):
        ids = addresses[start : start + 2000].reshape(-1).numpy()
        rows = cache.gather(ids, lambda missing: store.gather("engram.layer1", missing))
        assert torch.equal(rows, weight[torch.from_numpy(ids)])  # bitwise the model's rows
        plain_pages += pages_touched(ids, table.dim * 4)
        laid_pages += pages_touched(layout.slots(ids), table.dim * 4)
stats = cache.stats
print(
    f"hot-row cache: hit rate {stats.hit_rate:.2f}, rows read from the store {stats.rows_fetched}"
)
print(f"4 KiB pages touched per batch, laid out / today's order: {laid_pages / plain_pages:.2f}")
