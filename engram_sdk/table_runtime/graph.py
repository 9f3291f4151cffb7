"""Decode steps of an Engram model replayed as one CUDA graph, the table reads inside it.

``model.generate_graph.GraphedStep`` records a whole decode step and replays it per token
(one launch instead of hundreds) but leaves Engram models out, for two reasons this module
removes: their decoding state (the hasher's look-back ids, each Engram convolution's state)
is rebound to new tensors every step, which a replayed graph would never read; and a table
served from a store fetches on the host. :class:`GraphedDecode` keeps that state in fixed
buffers (the recorded step copies its new state into them), and every lookup becomes device
work: rows in pinned host memory (``dram://`` opened for a CUDA model) are gathered by the
GPU in place over PCIe; rows of other stores (files) are staged by the host into a fixed
pinned buffer before each replay (:mod:`engram_sdk.table_runtime.staged`), which the
recorded lookup copies from.

    runtime = attach_tables(model, "dram://", export=True)
    cache = stack_caches([prefilled], capacity=prompt + new, engram_context=..., pad_id=...)
    step = graph_decode(runtime, cache)
    for _ in range(new):
        logits = step.step(tokens)          # host or device ids (B, 1) -> logits (B, vocab)
        tokens = logits.argmax(-1, keepdim=True)
    step.finish()

Rows are the store's at every replay, so logits are bitwise those of the same graphed step
with the rows in GPU memory. A table with a hot-row cache (``attach_tables(hot_rows=N)``)
reads its cached rows from the GPU and only the others over PCIe; the cache is frozen from
:func:`graph_decode` to :meth:`GraphedDecode.finish` (nothing admitted, so the index the
graph reads stays true). The runtime's counters (``runtime.stats``) count the staged
rows of every step, and in-place reads only of the two steps run from Python.
"""

from __future__ import annotations

import contextlib
import time

import torch

from engram_sdk.errors import InputError
from engram_sdk.model.generate_graph import GraphedStep
from engram_sdk.model.transformer import ModelCache, Transformer
from engram_sdk.table_runtime.runtime import TableRuntime
from engram_sdk.table_runtime.store_table import StoreTable


class GraphedDecode(GraphedStep):
    """Decode steps of ``model`` (a :class:`Transformer`, or a :class:`TableRuntime`
    stepping one) on ``cache``, recorded on the second call and replayed after.

    Build it with :func:`graph_decode`, which checks that the step can be recorded. Tables
    whose rows are not read in place (files) are staged: before every step the host hashes
    the step's ids, gathers their rows into a fixed pinned buffer, and the recorded lookup
    copies them from there.
    """

    def __init__(self, model: Transformer | TableRuntime, cache: ModelCache) -> None:
        super().__init__(model, cache)
        self._static: list[torch.Tensor | None] | None = None
        self.net = model.model if isinstance(model, TableRuntime) else model
        batch = cache.last_ids.shape[0] if cache.last_ids is not None else 0
        self.staged = {
            layer: table
            for layer, table in self.net.engram_tables().items()
            if isinstance(table, StoreTable) and not table.reads_in_place(batch)
        }
        self._frozen = contextlib.ExitStack()  # hot caches read in place keep their rows
        for table in self.net.engram_tables().values():
            if isinstance(table, StoreTable) and table not in self.staged.values():
                self._frozen.enter_context(table.frozen_hot_rows())
        self._canonical: torch.Tensor | None = None  # host copy of the model's id map
        self._host_prefix: torch.Tensor | None = None
        if self.staged:
            self._canonical = self.net.canonical.cpu()
            self._host_prefix = (
                cache.last_host_ids if cache.last_host_ids is not None else cache.last_ids.cpu()
            )

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, vocab) after feeding ``tokens`` (B, 1): host or device ids."""
        if self.staged:
            self.stage(tokens.cpu())
        device = next(self.net.parameters()).device
        return super().step(tokens.to(device, non_blocking=True))

    def stage(self, host_ids: torch.Tensor) -> None:
        """Hash the next step's host ids (B, 1) and stage their rows in every staged table
        (:meth:`step` does this itself; the next forward then reads the staged rows)."""
        start = time.perf_counter()
        assert self._canonical is not None and self._host_prefix is not None
        canon = self._canonical[host_ids]
        for layer, table in self.staged.items():  # numpy: the host's fastest path for a few ids
            flat = self.net.hasher.hash(canon.numpy(), layer, self._host_prefix.numpy(), True)
            table.stage_rows(torch.from_numpy(flat))
        joined = torch.cat([self._host_prefix, canon], dim=1)
        self._host_prefix = joined[:, -self.net.hasher.context :]
        stats = next(iter(self.staged.values())).stats  # the runtime's, shared by its tables
        stats.add(prepare_seconds=time.perf_counter() - start, prepared_steps=1)

    def _forward(self) -> torch.Tensor:
        logits = super()._forward()
        self._static = keep_state(self.cache, self._static)
        return logits

    def finish(self) -> None:
        """Bring host-side lengths up to date; staged tables fetch their rows again, hot
        caches admit rows again."""
        super().finish()
        for table in self.staged.values():
            table.end_staging()
        self.staged = {}
        self._frozen.close()


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


def graph_blocker(model: Transformer | TableRuntime, cache: ModelCache) -> str | None:
    """Why decode steps of ``model`` on ``cache`` cannot be recorded (None if they can)."""
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
        if isinstance(table, StoreTable) and runtime is None:
            return f"Engram layer {layer} is served from a store: record its TableRuntime"
    return None


def graph_decode(model: Transformer | TableRuntime, cache: ModelCache) -> GraphedDecode:
    """Decode steps of ``model`` on ``cache`` replayed as one CUDA graph (see the module).

    ``cache``: prefilled, with room for every new token (``stack_caches(capacity=...)``);
    its attention caches are made static. Raises :class:`InputError` naming what prevents
    recording (a CPU model, sparse attention, a store table outside a runtime).
    """
    reason = graph_blocker(model, cache)
    if reason is not None:
        raise InputError(f"decode steps cannot be recorded as a CUDA graph: {reason}")
    return GraphedDecode(model, cache)
