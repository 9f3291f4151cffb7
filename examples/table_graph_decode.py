"""Decode with Engram rows in pinned host memory, every step replayed as one CUDA graph.

Run: python examples/table_graph_decode.py   (CUDA; on a CPU it says why it cannot record)

The model's Engram tables go to a pinned ``dram://`` store; the GPU gathers each step's
rows in place, inside the recorded graph. The same graph over the model's own GPU tables
gives bitwise the same logits. ``generate_batch(runtime, prompts, n)`` decodes prompts
together the same way (eagerly where nothing can be recorded, e.g. on a CPU).
"""

import torch
from engram_sdk.model import ModelCache, build_model, get_preset
from engram_sdk.model.batch_cache import stack_caches

from engram_sdk.table_runtime import attach_tables, generate_batch
from engram_sdk.table_runtime.graph import graph_blocker, graph_decode

NEW_TOKENS = 16
device = "cuda" if torch.cuda.is_available() else "cpu"
cfg = get_preset("tiny", tokenizer=None, vocab_size=300, n_dense_layers=4, hc_mult=1)
prompt = torch.randint(0, 300, (4, 12), generator=torch.Generator().manual_seed(0)).to(device)


def decode(step, model) -> torch.Tensor:
    """Greedy logits of NEW_TOKENS graphed steps after ``prompt`` (step: model or runtime)."""
    with torch.no_grad():
        cache = ModelCache()
        logits = step(prompt, cache)[:, -1]
        cache = stack_caches(
            [cache],
            capacity=prompt.shape[1] + NEW_TOKENS,
            engram_context=model.hasher.context,
            pad_id=model.hasher.config.pad_id,
        )
        reason = graph_blocker(step, cache)
        if reason is not None:  # e.g. no GPU here: nothing to record
            print(f"not recorded: {reason}")
            raise SystemExit(0)
        graph = graph_decode(step, cache)
        out = []
        for _ in range(NEW_TOKENS):
            logits = graph.step(logits.argmax(-1, keepdim=True))
            out.append(logits.clone())
        graph.finish()
    return torch.stack(out)


own = build_model(cfg, device=device, seed=1).eval()
served = build_model(cfg, device=device, seed=1).eval()
with attach_tables(served, "dram://") as runtime:  # batched generation through the runtime
    print("generate_batch:", generate_batch(runtime, [[5, 17, 200], [44, 1, 9, 7, 8]], 8))
want = decode(own, own)  # the model's own tables, on the GPU
with attach_tables(served, "dram://") as runtime:  # rows exported to pinned host memory
    got = decode(runtime, served)
print(f"{NEW_TOKENS} graphed steps; logits bitwise equal to GPU tables: {torch.equal(got, want)}")
