"""Serve a model's Engram tables from a store with the table runtime, three ways.

Run: python examples/table_runtime.py [folder]   (default: a temporary folder)

1. prefill with the next batch prefetched while this one computes, from a sharded store;
2. decoding token by token (host ids, as generation gives them) from an LMDB store;
3. training the rows in the store (dram://), with the next batch's rows prefetched.
Every logit is checked bitwise against the same model with its tables in memory.
"""

import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from engram_sdk.model import ModelCache, build_model, get_preset

from engram_sdk.table_runtime import attach_tables

folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
cfg = get_preset("tiny", tokenizer=None, vocab_size=1000, max_seq_len=64)
reference = build_model(cfg, seed=0).eval()
batches = [torch.randint(0, 1000, (2, 32)) for _ in range(3)]

# 1. Prefill: export the tables into a sharded store and serve every Engram layer from it.
served = build_model(cfg, seed=0).eval()
with attach_tables(served, f"shards://{folder / 'shards'}") as runtime, torch.no_grad():
    for i, ids in enumerate(batches):
        if i + 1 < len(batches):
            runtime.prefetch(batches[i + 1])  # batch i+1's rows load while batch i runs
        assert torch.equal(runtime(ids), reference(ids))
    print(f"prefill, shards://: {len(batches)} batches bitwise equal; stats:")
    for key, value in runtime.stats.as_dict().items():
        print(f"  {key}: {value}")

# 2. Decoding: a prompt, then one token at a time through the same cache.
with attach_tables(served, f"lmdb://{folder / 'lmdb'}") as runtime, torch.no_grad():
    prompt = batches[0][:1, :8]
    cache, want_cache = ModelCache(), ModelCache()
    logits, want = runtime(prompt, cache), reference(prompt, want_cache)
    for _ in range(8):
        assert torch.equal(logits, want)
        token = logits[:, -1].argmax(-1, keepdim=True)
        logits, want = runtime(token, cache), reference(token, want_cache)
    print(f"decoding, lmdb://: 8 tokens bitwise equal, {runtime.stats.fetches} fetches")

# 3. Training: the rows live in the store and get row-wise Adagrad updates there.
trained = build_model(cfg, seed=0).requires_grad_(False)  # here only the store rows train
with attach_tables(trained, "dram://", trainable=True) as runtime:
    optimizer = runtime.optimizer(lr=0.05)
    for i, ids in enumerate(batches):
        if i + 1 < len(batches):
            runtime.prefetch(batches[i + 1][:, :-1])
        logits = runtime(ids[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        rows = optimizer.step()
        optimizer.zero_grad()
        print(f"training step {i}: loss {loss.item():.4f}, {rows} store rows updated")
