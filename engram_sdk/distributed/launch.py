"""Starting the ranks: under ``torchrun`` (environment variables) or locally for CPU runs.

``init_distributed`` joins the job ``torchrun`` started (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``...) with a collective timeout, so a rank that dies fails the others with a
timeout error instead of a hang. ``spawn_local`` runs a function on ``world`` local
processes over gloo (tests, CPU-only machines) and raises :class:`RankFailed` naming the rank
and its exit code when any of them fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from engram_sdk.errors import EngramError


class RankFailed(EngramError):
    """A rank of a local job exited with an error (or was killed)."""

    def __init__(self, rank: int | None, detail: str) -> None:
        self.rank = rank
        super().__init__(f"rank {rank} failed: {detail}" if rank is not None else detail)


def default_backend() -> str:
    """``nccl`` when CUDA is available, else ``gloo``."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_distributed(*, timeout_s: float = 300.0, backend: str | None = None) -> DeviceMesh:
    """Join the job described by torchrun's environment; a 1-D mesh over all ranks."""
    missing = [
        v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ
    ]
    if missing:
        raise EngramError(
            f"not started by torchrun: {', '.join(missing)} unset "
            "(launch with `torchrun --nproc-per-node N ...`)"
        )
    backend = backend or default_backend()
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    device = "cuda" if backend == "nccl" else "cpu"
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return init_device_mesh(device, (dist.get_world_size(),))


def _entry(rank: int, world: int, store: str, timeout_s: float, fn: Callable, args: tuple) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=timeout_s),
    )
    try:
        fn(rank, world, init_device_mesh("cpu", (world,)), *args)
    finally:
        dist.destroy_process_group()


def spawn_local(fn: Callable[..., Any], world: int, *args: Any, timeout_s: float = 60.0) -> None:
    """Run ``fn(rank, world, mesh, *args)`` on ``world`` local CPU processes (gloo).

    ``fn`` must be importable (a module-level function). Raises :class:`RankFailed` when a
    rank raises or dies; the other ranks are then terminated (none is left hanging).
    """
    if world < 1:
        raise EngramError(f"world size must be >= 1, got {world}")
    with tempfile.TemporaryDirectory(prefix="engram-dist-") as tmp:
        store = str(Path(tmp) / "store")
        try:
            mp.spawn(_entry, args=(world, store, timeout_s, fn, args), nprocs=world, join=True)
        except mp.ProcessExitedException as exc:
            raise RankFailed(exc.error_index, f"exited with code {exc.exit_code}") from exc
        except mp.ProcessRaisedException as exc:
            raise RankFailed(exc.error_index, str(exc).strip().splitlines()[-1]) from exc
