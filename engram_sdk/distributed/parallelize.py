"""``parallelize(model, mesh, config)``: distributed wrapping applied from outside the model.

As torchtitan does, nothing inside the model knows it is distributed: this function swaps
each Engram layer's table for a :class:`ShardedEngramTable`, each MoE for an
:class:`ExpertParallelMoE`, and applies FSDP2 (``fully_shard``) to every block and the root,
leaving the expert and table shards (already ``DTensor``s) to their own exchanges.
"""

from __future__ import annotations

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard

from engram_sdk.distributed.comm import CommStats
from engram_sdk.distributed.config import ParallelConfig
from engram_sdk.distributed.expert_parallel import ExpertParallelMoE
from engram_sdk.distributed.sharded_table import ShardedEngramTable
from engram_sdk.engram.table import EmbeddingTable
from engram_sdk.errors import InputError
from engram_sdk.model.moe import MoE
from engram_sdk.model.transformer import Transformer


def parallelize(
    model: Transformer, mesh: DeviceMesh, config: ParallelConfig | None = None
) -> Transformer:
    """Spread ``model`` over ``mesh`` (1-D, one rank per process) in place and return it.

    Every rank must build the same model (same seed) before calling this: shards are cut
    from each rank's full copy. On a one-rank mesh the model is returned as it is (set
    ``config.apply_at_world_size_1`` to wrap anyway); its checkpoints still load at any world
    size, since ``torch.distributed.checkpoint`` reshards plain tensors into ``DTensor``s.
    """
    config = config or ParallelConfig()
    if mesh.ndim != 1:
        raise InputError(f"parallelize needs a 1-D device mesh, got {mesh.ndim} dims")
    if mesh.size() == 1 and not config.apply_at_world_size_1:
        return model  # one rank: nothing to shard, no wrapper to pay for
    ignored: set[torch.nn.Parameter] = set()
    if config.shard_engram_tables:
        for layer_id, table in model.engram_tables().items():
            if not isinstance(table, EmbeddingTable):
                raise InputError(
                    f"Engram layer {layer_id} is served by {type(table).__name__}; only "
                    "in-model tables (EmbeddingTable) can be row-sharded"
                )
            sharded = ShardedEngramTable(table.embedding.weight, mesh)
            model.set_engram_table(layer_id, sharded)
            ignored.update(sharded.parameters())
    if config.expert_parallel:
        for block in model.blocks:
            if isinstance(block.ffn, MoE) and not isinstance(block.ffn, ExpertParallelMoE):
                block.ffn = ExpertParallelMoE(block.ffn, mesh)
                ignored.update(
                    p for n, p in block.ffn.named_parameters() if n.startswith("expert_w")
                )
    if config.fsdp:
        for block in model.blocks:
            fully_shard(
                block,
                mesh=mesh,
                reshard_after_forward=config.reshard_after_forward,
                ignored_params=ignored,
            )
        fully_shard(model, mesh=mesh, ignored_params=ignored)
    return model


def comm_stats(model: Transformer) -> dict[str, CommStats]:
    """The exchange counters of every sharded table and expert-parallel MoE, by name."""
    return {
        name: module.stats
        for name, module in model.named_modules()
        if isinstance(module, ShardedEngramTable | ExpertParallelMoE)
    }
