"""Functions the distributed tests run on every rank (module level, so spawn can import them).

Each rank builds the same tiny model twice from one seed: a plain copy that runs the whole
batch in one process (the reference) and a parallelized copy that runs the rank's slice.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from engram_sdk.model import build_model, get_preset

from engram_sdk.distributed import ParallelConfig, comm_stats, parallelize
from engram_sdk.distributed.checkpoint import load_sharded, save_sharded

BATCH, SEQ = 4, 16


def tiny(**overrides):
    return build_model(
        get_preset("tiny", tokenizer=None, vocab_size=512, max_seq_len=64, **overrides), seed=0
    )


def batch(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 512, (BATCH, SEQ + 1), generator=g)


def loss_of(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(ids[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten()), logits


def full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def step_matches_reference(rank, world, mesh, out_dir: str, overrides: dict) -> None:
    """Forward, backward and one SGD step of the parallel model vs the one-process run."""
    ids = batch()
    ref = tiny(**overrides)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    ref_loss, ref_logits = loss_of(ref, ids)
    ref_loss.backward()
    ref_grads = {n: p.grad.clone() for n, p in ref.named_parameters() if p.grad is not None}
    ref_opt.step()

    model = parallelize(tiny(**overrides), mesh, ParallelConfig(apply_at_world_size_1=True))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    per = BATCH // world
    mine = ids[rank * per : (rank + 1) * per]
    loss, logits = loss_of(model, mine)
    loss.backward()
    report = {
        "logits": (logits - ref_logits[rank * per : (rank + 1) * per]).abs().max().item(),
        "grads": max(
            (full(p.grad) - ref_grads[n]).abs().max().item() for n, p in model.named_parameters()
        ),
        "missing_grads": [n for n, p in model.named_parameters() if p.grad is None],
    }
    opt.step()
    ref_params = dict(ref.named_parameters())
    report["params"] = max(
        (full(p.detach()) - ref_params[n].detach()).abs().max().item()
        for n, p in model.named_parameters()
    )
    report["stats"] = {n: s.as_dict() for n, s in comm_stats(model).items()}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(report))


def save_then_logits(rank, world, mesh, folder: str) -> None:
    """Train one step at this world size, save sharded, and write the full-batch logits."""
    torch.manual_seed(0)
    model = parallelize(tiny(), mesh, ParallelConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=False)
    ids = batch()
    per = BATCH // world
    loss, _ = loss_of(model, ids[rank * per : (rank + 1) * per])
    loss.backward()
    opt.step()
    save_sharded(model, folder, ParallelConfig())
    with torch.no_grad():
        logits = model(batch(2)[:, :-1])
    if rank == 0:
        torch.save(logits, Path(folder) / "logits.pt")


def load_then_logits(rank, world, mesh, folder: str, out: str) -> None:
    """Load a sharded checkpoint at this world size and write the full-batch logits."""
    model = parallelize(tiny(), mesh, ParallelConfig())
    load_sharded(model, folder)
    with torch.no_grad():
        logits = model(batch(2)[:, :-1])
    if rank == 0:
        torch.save(logits, out)


def die_mid_step(rank, world, mesh) -> None:
    """Rank 1 dies before the first exchange; the others must fail, not hang."""
    import os

    model = parallelize(tiny(), mesh, ParallelConfig())
    if rank == 1:
        os._exit(3)
    dist.barrier()
    loss_of(model, batch())
