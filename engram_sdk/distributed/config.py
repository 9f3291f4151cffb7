"""``ParallelConfig``: how a model is spread over the ranks (saved beside sharded checkpoints)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PARALLEL_FORMAT_VERSION = 1


class ParallelConfig(BaseModel):
    """What :func:`~engram_sdk.distributed.parallelize` applies to a model."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = PARALLEL_FORMAT_VERSION
    fsdp: bool = Field(True, description="FSDP2 (fully_shard) on the dense parts")
    expert_parallel: bool = Field(True, description="routed experts split across ranks")
    shard_engram_tables: bool = Field(True, description="Engram table rows split across ranks")
    reshard_after_forward: bool = Field(
        True, description="FSDP2: free gathered parameters after each block's forward"
    )
    apply_at_world_size_1: bool = Field(
        False,
        description="wrap even on a one-rank mesh (by default a one-rank mesh leaves the "
        "model as it is, as torchtitan applies FSDP/EP only when their degree is > 1)",
    )
    timeout_s: float = Field(
        300.0, gt=0, description="collective timeout: a dead rank fails the job after this long"
    )
