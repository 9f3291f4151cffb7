"""Serve a model's Engram tables from a store on disk and compare with the in-memory tables.

Run: python examples/prefetch_store_tables.py [folder]   (default: a temporary folder)
"""

import sys
import tempfile
from pathlib import Path

import torch
from engram_sdk.model import build_model, get_preset

from engram_sdk.prefetch import attach_store_tables, prefetch_next

folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
cfg = get_preset("tiny", tokenizer=None, vocab_size=1000, max_seq_len=64)
reference = build_model(cfg, seed=0).eval()
served = build_model(cfg, seed=0).eval()

# Export the tables into a sharded store and serve every Engram layer from it.
store, stats = attach_store_tables(served, f"shards://{folder / 'engram-tables'}")
batches = [torch.randint(0, 1000, (2, 32)) for _ in range(3)]
with torch.no_grad():
    for i, ids in enumerate(batches):
        if i + 1 < len(batches):
            prefetch_next(served, batches[i + 1])  # batch i+1's rows load while batch i runs
        assert torch.equal(served(ids), reference(ids))
print("logits bitwise equal to the in-memory tables for", len(batches), "batches")
for key, value in stats.as_dict().items():
    print(f"  {key}: {value}")
store.close()
