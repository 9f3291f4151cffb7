"""``engram train --nproc N``: data-parallel training of the built-in model under torchrun.

The CLI builds a :class:`DistributedTrainRun` and :func:`launch` starts
``torch.distributed.run`` with this module as every rank's program. Each rank reads the
same token stream, trains on its own rows of every batch (the batch size must divide by the
number of ranks) with the model passed through :func:`parallelize`, and checkpoints are
saved sharded (``step-N/sharded``) and, by rank 0, converted into the single-file checkpoint
the rest of the SDK reads (``step-N/``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field

from engram_sdk.distributed.config import ParallelConfig
from engram_sdk.errors import InputError

RUN_FORMAT_VERSION = 1


class DistributedTrainRun(BaseModel):
    """Everything one rank needs to take part in ``engram train --nproc N``."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = RUN_FORMAT_VERSION
    data: list[str] = Field(description="files or folders of text")
    out: str = Field(description="checkpoint folder")
    preset: str = "tiny"
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields")
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    progress: bool = True


def launch(run: DistributedTrainRun, nproc: int) -> int:
    """Start ``nproc`` local ranks with torchrun; returns its exit code."""
    if nproc < 1:
        raise InputError(f"--nproc must be >= 1, got {nproc}")
    batch = run.train.get("batch_size", 4)
    if batch % nproc:
        raise InputError(f"--batch-size {batch} must divide by --nproc {nproc}")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", "-m", "engram_sdk.distributed.train_main",
        run.model_dump_json(),
    ]  # fmt: skip
    return subprocess.run(cmd, check=False).returncode


def _save(folder: Path, config: ParallelConfig, model: Any, *_: Any) -> None:
    from engram_sdk.distributed.checkpoint import dcp_to_checkpoint, save_sharded

    save_sharded(model, folder / "sharded", config)
    if dist.get_rank() == 0:
        dcp_to_checkpoint(folder / "sharded", folder)


def run_rank(run: DistributedTrainRun) -> list[float]:
    """One rank's share of the run (called under torchrun)."""
    from engram_sdk.corpus import read_token_ids
    from engram_sdk.distributed.launch import init_distributed
    from engram_sdk.distributed.parallelize import parallelize
    from engram_sdk.model import build_model, get_preset
    from engram_sdk.model.train import TokenStream, TrainConfig, train

    mesh = init_distributed(timeout_s=run.parallel.timeout_s)
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = TrainConfig(**run.train)
    per = cfg.batch_size // world
    device = mesh.device_type
    preset = get_preset(run.preset, max_seq_len=max(cfg.seq_len, 128))
    model = parallelize(build_model(preset, device=device, seed=cfg.seed), mesh, run.parallel)

    def whole_batch_loss(loss: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(loss, op=dist.ReduceOp.AVG)
        return loss

    losses = train(
        model,
        TokenStream(read_token_ids(run.data)),
        cfg,
        out_dir=run.out,
        progress=run.progress and rank == 0,
        rows=slice(rank * per, (rank + 1) * per),
        save=lambda model, folder, *rest: _save(Path(folder), run.parallel, model),
        report=whole_batch_loss,
    )
    if rank == 0:
        Path(run.out).mkdir(parents=True, exist_ok=True)
        (Path(run.out) / "losses.json").write_text(json.dumps(losses))
        print(
            f"trained {len(losses)} steps on {world} ranks: loss {losses[0]:.3f} → "
            f"{losses[-1]:.3f}; checkpoint in {run.out}/step-{cfg.steps:06d}"
        )
    dist.destroy_process_group()
    return losses


if __name__ == "__main__":
    run_rank(DistributedTrainRun.model_validate_json(sys.argv[1]))
