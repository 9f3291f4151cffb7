"""Train the tiny model on several ranks: expert parallel MoE, row-sharded Engram tables, FSDP2.

    python examples/distributed_train.py                 # 2 CPU ranks over gloo, spawned here
    torchrun --nproc-per-node 2 examples/distributed_train.py --torchrun   # GPUs (NCCL) or CPU

Each rank trains on its own slice of a random batch for a few steps, prints the loss and the
exchange counters, then saves a sharded checkpoint and converts it into a single-file one.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from engram_sdk.model import build_model, get_preset

from engram_sdk.distributed import (
    ParallelConfig,
    comm_stats,
    dcp_to_checkpoint,
    init_distributed,
    parallelize,
    save_sharded,
    spawn_local,
)


def train(rank: int, world: int, mesh, folder: str, steps: int = 3) -> None:
    device = mesh.device_type
    cfg = get_preset("tiny", tokenizer=None, vocab_size=512, max_seq_len=64)
    model = parallelize(build_model(cfg, device=device, seed=0), mesh, ParallelConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(rank)  # each rank its own data
    for step in range(steps):
        ids = torch.randint(0, 512, (2, 33), generator=g).to(device)
        loss = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad()
        if rank == 0:
            print(f"step {step}: loss {loss.item():.4f} (rank 0's slice)")
    if rank == 0:
        for name, stats in comm_stats(model).items():
            s = stats.as_dict()
            print(
                f"{name}: {s['ids_requested']} ids requested, {s['ids_sent']} sent, "
                f"{s['bytes_sent']:,} bytes, {s['seconds'] * 1e3:.1f} ms in collectives"
            )
    save_sharded(model, folder, ParallelConfig())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torchrun", action="store_true", help="join the job torchrun started")
    ap.add_argument("--ranks", type=int, default=2, help="local CPU ranks to spawn")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="engram-dist-example-"))
    if args.torchrun:
        mesh = init_distributed()
        rank = dist.get_rank()
        # every rank needs the same folder: rank 0's choice, broadcast
        shared = [str(folder)]
        dist.broadcast_object_list(shared, src=0)
        folder = Path(shared[0])
        train(rank, dist.get_world_size(), mesh, str(folder / "sharded"))
        dist.destroy_process_group()
        if rank != 0:
            return
    else:
        spawn_local(train, args.ranks, str(folder / "sharded"))
    single = dcp_to_checkpoint(folder / "sharded", folder / "single")
    print(f"sharded checkpoint: {folder / 'sharded'}\nsingle-file checkpoint: {single}")


if __name__ == "__main__":
    main()
