"""Training: token streams over corpus ids (``engram_sdk.corpus`` reads files), AdamW with its own Engram learning rate,
warmup + cosine schedule, clipping, bf16 autocast on GPU, checkpoints with exact resume."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from engram_sdk.errors import InputError

TRAIN_FORMAT_VERSION = 1


class TrainConfig(BaseModel):
    """Hyper-parameters of ``engram train``."""

    format_version: int = TRAIN_FORMAT_VERSION
    steps: int = 100
    batch_size: int = 4
    seq_len: int = 128
    lr: float = 3e-3
    engram_lr: float = 1.5e-2  # the Engram paper trains the tables with a larger rate
    weight_decay: float = 0.1
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 0


class TokenStream:
    """All ids of a corpus in a fixed order, read in windows.

    ``engram_sdk.corpus.read_token_ids(paths)`` gives the ids of files and folders (files
    sorted, EOT after each).
    """

    def __init__(self, ids: np.ndarray, position: int = 0) -> None:
        if len(ids) < 2:
            raise InputError("the training corpus has fewer than 2 tokens")
        self.ids, self.position = ids, position

    def next_batch(self, batch: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (batch, seq_len), wrapping around the corpus."""
        span = batch * (seq_len + 1)
        idx = (self.position + np.arange(span)) % len(self.ids)
        self.position = int((self.position + batch * seq_len) % len(self.ids))
        window = torch.from_numpy(self.ids[idx].reshape(batch, seq_len + 1))
        return window[:, :-1], window[:, 1:]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; Engram tables get ``engram_lr`` and no weight decay, norms and biases no decay."""
    engram, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if ".engram.table." in name:
            engram.append(p)
        elif p.dim() < 2 or "norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "base_lr": cfg.lr},
        {"params": no_decay, "weight_decay": 0.0, "base_lr": cfg.lr},
        {"params": engram, "weight_decay": 0.0, "base_lr": cfg.engram_lr},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=(0.9, 0.95))


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * min(progress, 1.0))
    )


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state().tolist(),
        "numpy": list(map(int, np.random.get_state()[1])),
        "python": random.getstate()[1],
    }


def train(
    model: torch.nn.Module,
    stream: TokenStream,
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    rows: slice | None = None,
    save: Callable[..., Any] | None = None,
    report: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[float]:
    """Train ``model`` on ``stream``; returns the loss of every step run.

    Data-parallel callers pass ``rows`` (the rows of each batch this process trains on),
    ``save`` (called as ``save_checkpoint`` is: model, folder, optimizer, extra) and
    ``report`` (turns this process's loss into the loss of the whole batch).
    """
    from engram_sdk.model.checkpoint import load_optimizer, load_weights, save_checkpoint

    save = save or save_checkpoint

    torch.manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    step = 0
    if resume is not None:
        resume = Path(resume)
        load_weights(model, resume / "model.safetensors")
        optimizer = make_optimizer(model, cfg)
        load_optimizer(optimizer, resume)
        state = json.loads((resume / "trainer.json").read_text())
        step, stream.position = state["step"], state["position"]
        torch.set_rng_state(torch.tensor(state["rng"]["torch"], dtype=torch.uint8))
    device = next(model.parameters()).device
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _nullcontext()
    )
    losses: list[float] = []
    fused_head = _plain_head(model)
    model.train()
    bar = _bar(progress, cfg.steps, step)
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(step, cfg)
        inputs, targets = stream.next_batch(cfg.batch_size, cfg.seq_len)
        if rows is not None:
            inputs, targets = inputs[rows], targets[rows]
        with autocast:
            loss = _loss(model, inputs.to(device), targets.to(device), fused_head)
            aux = sum(
                (m.aux_loss for m in model.moe_layers() if m.aux_loss.requires_grad),
                torch.zeros((), device=device),
            )
        optimizer.zero_grad(set_to_none=True)
        (loss + aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        for moe in model.moe_layers():
            moe.update_bias()
        step += 1
        losses.append(float(report(loss.detach()) if report else loss.detach()))
        bar(step, losses[-1], cfg.batch_size * cfg.seq_len)
        if out_dir is not None and (
            step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
        ):
            extra = {
                "step": step,
                "position": stream.position,
                "train_config": cfg.model_dump(),
                "rng": {"torch": torch.get_rng_state().tolist()},
            }
            save(model, Path(out_dir) / f"step-{step:06d}", optimizer, extra)
    if hasattr(bar, "close"):
        bar.close()
    return losses


def _plain_head(model: torch.nn.Module) -> bool:
    """Whether the fused loss applies: our Transformer, its head not sharded by a wrapper."""
    from engram_sdk.model.transformer import Transformer
    from torch.distributed.tensor import DTensor

    return isinstance(model, Transformer) and not isinstance(model.head.weight, DTensor)


def _loss(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, fused_head: bool
) -> torch.Tensor:
    """Next-token cross-entropy; the head fused into it (no full logits) where possible."""
    if fused_head:
        from engram_sdk.model.loss import lm_loss

        return lm_loss(model, inputs, targets)
    logits = model(inputs)
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _bar(enabled: bool, total: int, start: int) -> Any:
    if not enabled:
        return lambda *_a: None
    import time

    from rich.progress import Progress

    progress = Progress(*Progress.get_default_columns(), "{task.fields[info]}")
    progress.start()
    task = progress.add_task("train", total=total, completed=start, info="")
    t0, seen = time.perf_counter(), [0]

    def update(step: int, loss: float, tokens: int) -> None:
        seen[0] += tokens
        rate = seen[0] / max(time.perf_counter() - t0, 1e-9)
        progress.update(task, completed=step, info=f"loss {loss:.3f} · {rate:,.0f} tok/s")

    update.close = progress.stop  # type: ignore[attr-defined]
    return update
