"""Sharded checkpoints with ``torch.distributed.checkpoint``, and conversion to and from the
single-file safetensors checkpoints of :mod:`engram_sdk.model.checkpoint`.

A sharded checkpoint folder holds ``config.json`` (the ModelConfig), ``parallel.json`` (the
ParallelConfig and the world size it was saved at) and ``dcp/`` (DCP's own files). Because
every sharded tensor is a ``DTensor``, DCP reshards on load: a checkpoint saved at world
size 2 loads at 1 or 4.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist
import torch.distributed.checkpoint as dcp

from engram_sdk.distributed.config import ParallelConfig
from engram_sdk.errors import InputError
from engram_sdk.model import build_model
from engram_sdk.model.checkpoint import save_checkpoint
from engram_sdk.model.config import ModelConfig
from engram_sdk.model.transformer import Transformer

SHARDED_FORMAT_VERSION = 1


def save_sharded(model: Transformer, folder: str | Path, config: ParallelConfig) -> Path:
    """Every rank calls this together; rank 0 also writes the JSON files."""
    folder = Path(folder)
    dcp.save({"model": model.state_dict()}, checkpoint_id=str(folder / "dcp"))
    if not dist.is_initialized() or dist.get_rank() == 0:
        (folder / "config.json").write_text(model.config.model_dump_json(indent=1))
        meta = {
            "format_version": SHARDED_FORMAT_VERSION,
            "world_size": dist.get_world_size() if dist.is_initialized() else 1,
            "parallel": config.model_dump(),
        }
        (folder / "parallel.json").write_text(json.dumps(meta, indent=1))
    if dist.is_initialized():
        dist.barrier()
    return folder


def read_sharded_config(folder: str | Path) -> ModelConfig:
    """The ModelConfig a sharded checkpoint was saved with (checked format version)."""
    folder = Path(folder)
    meta_path = folder / "parallel.json"
    if not meta_path.is_file() or not (folder / "dcp").is_dir():
        raise InputError(f"{folder} is not a sharded checkpoint (no parallel.json or dcp/)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != SHARDED_FORMAT_VERSION:
        raise InputError(
            f"{meta_path}: format version {meta.get('format_version')}, "
            f"expected {SHARDED_FORMAT_VERSION}"
        )
    return ModelConfig.model_validate_json((folder / "config.json").read_text())


def load_sharded(model: Transformer, folder: str | Path) -> Transformer:
    """Load a sharded checkpoint into ``model`` (parallelized at any world size, or plain)."""
    read_sharded_config(folder)
    state = {"model": model.state_dict()}
    dcp.load(state, checkpoint_id=str(Path(folder) / "dcp"))
    model.load_state_dict(state["model"])
    return model


def dcp_to_checkpoint(folder: str | Path, out: str | Path) -> Path:
    """Convert a sharded checkpoint into a single-file safetensors checkpoint (one process;
    model weights only: optimizer state stays in the sharded checkpoint)."""
    cfg = read_sharded_config(folder)
    model = build_model(cfg, seed=None)
    state = {"model": model.state_dict()}
    # no_dist: this process reads every shard itself, also inside a running job (rank 0)
    dcp.load(state, checkpoint_id=str(Path(folder) / "dcp"), no_dist=True)
    model.load_state_dict(state["model"])
    return save_checkpoint(model, out)
