"""Batched generation of an Engram model whose decode steps replay as one CUDA graph.

``engram_sdk.model.generate.generate_batch`` records decode steps only for models without
Engram layers (their look-back state and table reads are outside what its graph keeps).
This wraps it for Engram models, served from a store by a :class:`TableRuntime` or with
their tables in memory: decode steps are recorded by :class:`GraphedDecode` (Engram state
in fixed buffers; pinned rows read in place inside the graph, file rows staged before each
replay). Where a step cannot be recorded (a CPU model, sparse attention) it decodes
eagerly, as ``generate_batch`` does. Tokens are those of eager decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engram_sdk.model.generate import generate_batch as model_generate_batch
from engram_sdk.model.transformer import ModelCache, Transformer
from engram_sdk.table_runtime.graph import GraphedDecode, graph_blocker
from engram_sdk.table_runtime.runtime import TableRuntime


def generate_batch(
    model: Transformer | TableRuntime,
    prompts: Sequence[Sequence[int] | torch.Tensor],
    max_new_tokens: int,
    **options: Any,
) -> list[list[int]]:
    """New ids for every prompt (see ``engram_sdk.model.generate.generate_batch``, whose
    keyword options this takes), decode steps recorded through ``model``'s runtime."""
    net = model.model if isinstance(model, TableRuntime) else model

    def record(cache: ModelCache) -> GraphedDecode | None:
        return GraphedDecode(model, cache) if graph_blocker(model, cache) is None else None

    return model_generate_batch(net, prompts, max_new_tokens, record=record, **options)
