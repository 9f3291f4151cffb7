"""Distributed training and inference on ``torch.distributed``, applied from outside the model.

``parallelize(model, mesh, config)`` shards the model (FSDP2 on the dense parts, expert
parallelism for routed experts, row-sharded Engram tables); ``save_sharded`` /
``load_sharded`` checkpoint it with ``torch.distributed.checkpoint`` at any world size.
"""

from engram_sdk.distributed.checkpoint import (
    dcp_to_checkpoint,
    load_sharded,
    save_sharded,
)
from engram_sdk.distributed.comm import CommStats
from engram_sdk.distributed.config import ParallelConfig
from engram_sdk.distributed.expert_parallel import ExpertParallelMoE
from engram_sdk.distributed.launch import RankFailed, init_distributed, spawn_local
from engram_sdk.distributed.parallelize import comm_stats, parallelize
from engram_sdk.distributed.sharded_table import ShardedEngramTable

__all__ = [
    "CommStats",
    "ExpertParallelMoE",
    "ParallelConfig",
    "RankFailed",
    "ShardedEngramTable",
    "comm_stats",
    "dcp_to_checkpoint",
    "init_distributed",
    "load_sharded",
    "parallelize",
    "save_sharded",
    "spawn_local",
]
