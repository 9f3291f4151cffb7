"""Decode steps of an Engram model replayed as one CUDA graph, the table gather inside it.

``model.generate_graph.GraphedStep`` records a whole decode step and replays it per token
(one launch instead of hundreds) but leaves Engram models out, for two reasons this module
removes: their decoding state (the hasher's look-back ids, each Engram convolution's state)
is rebound to new tensors every step, which a replayed graph would never read; and a table
served from a store may fetch on the host. :class:`GraphedDecode` keeps that state in fixed
buffers (the recorded step copies its new state into them) and accepts a step whose every
lookup is device work: in-memory tables, and store tables whose rows sit in pinned host
memory (``dram://`` opened for a CUDA model), gathered by the GPU in place over PCIe.

    runtime = attach_tables(model, "dram://", export=True)
    cache = stack_caches([prefilled], capacity=prompt + new, engram_context=..., pad_id=...)
    step = graph_decode(runtime, cache)
    for _ in range(new):
        logits = step.step(tokens)          # device ids (B, 1) -> logits (B, vocab)
        tokens = logits.argmax(-1, keepdim=True)
    step.finish()

Rows are the store's at every replay (the graph reads the pinned memory itself), so logits
are bitwise those of the same graphed step with the rows in GPU memory. The runtime's
counters (``runtime.stats``) count only the two steps run from Python.
"""

from __future__ import annotations

import torch

from engram_sdk.errors import InputError
from engram_sdk.model.generate_graph import GraphedStep
from engram_sdk.model.transformer import ModelCache, Transformer
from engram_sdk.table_runtime.runtime import TableRuntime
from engram_sdk.table_runtime.store_table import StoreTable


class GraphedDecode(GraphedStep):
    """Decode steps of ``model`` (a :class:`Transformer`, or a :class:`TableRuntime`
    stepping one) on ``cache``, recorded on the second call and replayed after.

    Build it with :func:`graph_decode`, which checks that the step can be recorded.
    """

    def __init__(self, model: Transformer | TableRuntime, cache: ModelCache) -> None:
        super().__init__(model, cache)
        self._static: list[torch.Tensor | None] | None = None

    def _forward(self) -> torch.Tensor:
        logits = super()._forward()
        self._static = keep_state(self.cache, self._static)
        return logits


def keep_state(
    cache: ModelCache, buffers: list[torch.Tensor | None] | None
) -> list[torch.Tensor | None]:
    """Copy a step's new Engram state into fixed ``buffers`` and point ``cache`` at them.

    ``buffers`` None (the first, eager step): they are allocated here, and returned. A
    recorded step copies into them, so every replay reads what the previous one wrote.
    """
    new = [cache.last_ids, *(lc.conv for lc in cache.layers)]
    if buffers is None:
        buffers = [None if t is None else t.clone() for t in new]
    else:
        for buffer, value in zip(buffers, new, strict=True):
            if buffer is not None and value is not None:
                buffer.copy_(value)
    cache.last_ids = buffers[0]
    for lc, buffer in zip(cache.layers, buffers[1:], strict=True):
        lc.conv = buffer
    cache.last_host_ids = None  # replays advance only the device's copy
    return buffers


def graph_blocker(model: Transformer | TableRuntime, cache: ModelCache, batch: int) -> str | None:
    """Why decode steps of ``batch`` rows of ``model`` on ``cache`` cannot be recorded
    (None if they can)."""
    runtime = model if isinstance(model, TableRuntime) else None
    net = runtime.model if runtime is not None else model
    assert isinstance(net, Transformer)
    if not next(net.parameters()).is_cuda:
        return "the model is not on a CUDA device"
    if net.config.dsa_topk:
        return "sparse attention plans its top-k on the host"
    if not cache.layers or any(lc.attn is None for lc in cache.layers):
        return "the cache holds no prompt yet (prefill first)"
    if net.config.engram_layer_ids and cache.last_ids is None:
        return "the cache holds no Engram look-back ids (prefill first)"
    for layer, table in net.engram_tables().items():
        if not isinstance(table, StoreTable):
            continue
        if runtime is None:
            return f"Engram layer {layer} is served from a store: record its TableRuntime"
        if not table.reads_in_place(batch):
            return (
                f"Engram layer {layer}'s rows are not read in place for {batch} tokens "
                f"(pinned dram:// rows and direct_tokens >= {batch} are needed)"
            )
    return None


def graph_decode(model: Transformer | TableRuntime, cache: ModelCache) -> GraphedDecode:
    """Decode steps of ``model`` on ``cache`` replayed as one CUDA graph (see the module).

    ``cache``: prefilled, with room for every new token (``stack_caches(capacity=...)``);
    its attention caches are made static. Raises :class:`InputError` naming what prevents
    recording (a CPU model, sparse attention, a table fetched on the host).
    """
    batch = cache.last_ids.shape[0] if cache.last_ids is not None else 0
    reason = graph_blocker(model, cache, batch)
    if reason is not None:
        raise InputError(f"decode steps cannot be recorded as a CUDA graph: {reason}")
    return GraphedDecode(model, cache)
