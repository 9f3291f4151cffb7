"""Checkpoints: safetensors weights (never pickle), the config as JSON, optimizer state.

Layout of a checkpoint folder: ``checkpoint.json`` (format version, tokenizer, files),
``config.json`` (the ModelConfig), ``model.safetensors``, and for training
``optimizer.safetensors`` + ``optimizer.json`` and ``trainer.json``. Files are written under
temporary names and renamed, ``checkpoint.json`` last, so a folder with a checkpoint.json is
complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from engram_sdk.model.config import ModelConfig
from safetensors.torch import load_file, save_file

from engram_sdk.errors import InputError

CHECKPOINT_FORMAT_VERSION = 1


def _write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(
    model: torch.nn.Module,
    folder: str | Path,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` (and optionally ``optimizer`` and trainer state) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg: ModelConfig = model.config
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _write(folder / "config.json", lambda p: p.write_text(cfg.model_dump_json(indent=1)))
    _write(
        folder / "model.safetensors", lambda p: save_file(state, str(p), metadata={"format": "pt"})
    )
    files = ["config.json", "model.safetensors"]
    if optimizer is not None:
        opt = optimizer.state_dict()
        tensors = {
            f"{i}.{name}": t.contiguous().cpu()
            for i, st in opt["state"].items()
            for name, t in st.items()
            if torch.is_tensor(t)
        }
        scalars = {
            str(i): {n: v for n, v in st.items() if not torch.is_tensor(v)}
            for i, st in opt["state"].items()
        }
        _write(folder / "optimizer.safetensors", lambda p: save_file(tensors, str(p)))
        _write(
            folder / "optimizer.json",
            lambda p: p.write_text(
                json.dumps({"param_groups": opt["param_groups"], "scalars": scalars})
            ),
        )
        files += ["optimizer.safetensors", "optimizer.json"]
    if extra is not None:
        _write(folder / "trainer.json", lambda p: p.write_text(json.dumps(extra)))
        files.append("trainer.json")
    manifest = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "tokenizer": cfg.tokenizer,
        "files": files,
    }
    _write(folder / "checkpoint.json", lambda p: p.write_text(json.dumps(manifest, indent=1)))
    return folder


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The checkpoint manifest, checked for presence and format version."""
    path = Path(folder) / "checkpoint.json"
    if not path.is_file():
        raise InputError(f"{folder} is not a complete checkpoint (no checkpoint.json)")
    manifest = json.loads(path.read_text())
    if manifest.get("format_version", 0) > CHECKPOINT_FORMAT_VERSION:
        raise InputError(
            f"{path}: checkpoint format {manifest['format_version']} is newer than this engram-sdk"
        )
    return manifest


def load_checkpoint(folder: str | Path, device: str = "cpu") -> torch.nn.Module:
    """Build the model of a checkpoint and load its weights; mismatches are listed by name."""
    from engram_sdk.model import build_model

    folder = Path(folder)
    read_manifest(folder)
    cfg = ModelConfig.model_validate_json((folder / "config.json").read_text())
    model = build_model(cfg, device="cpu", seed=None)
    load_weights(model, folder / "model.safetensors")
    return model.to(device)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a safetensors file into ``model``, validating names, shapes and dtypes."""
    state = load_file(str(path))
    check_state(model, state, str(path))
    model.load_state_dict(state)


def check_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Raise :class:`InputError` listing missing, unexpected and mismatched tensors."""
    path = where
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} {state[k].dtype}, model {tuple(own[k].shape)} {own[k].dtype}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape or state[k].dtype != own[k].dtype
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' …' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append(f"mismatched {sorted(wrong)[:5]}")
        raise InputError(f"{path} does not fit the model: " + "; ".join(parts))


def load_optimizer(optimizer: torch.optim.Optimizer, folder: str | Path) -> None:
    """Restore optimizer state saved by :func:`save_checkpoint`."""
    folder = Path(folder)
    tensors = load_file(str(folder / "optimizer.safetensors"))
    meta = json.loads((folder / "optimizer.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = t
    for i, scalars in meta["scalars"].items():
        state.setdefault(int(i), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
