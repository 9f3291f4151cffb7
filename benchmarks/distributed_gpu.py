"""GPU benchmark: the distributed path at world size 1 against the plain model (same run).

    python benchmarks/distributed_gpu.py [--preset small] [--rounds 8] [--steps 4]

One process, one GPU, a one-rank NCCL group. Two copies of the model from the same seed:
the plain one, and one passed through ``parallelize`` (FSDP2 on the dense parts, expert
parallel MoE, row-sharded Engram tables, each at world size 1). Rounds alternate the two;
each round times ``--steps`` consecutive training steps (bf16 autocast, AdamW) and the
overhead is the median per-round ratio. Prints a short table; the goal is <= 2%.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn.functional as F
from engram_sdk.model import build_model, get_preset
from torch.distributed.device_mesh import init_device_mesh

from engram_sdk.distributed import ParallelConfig, parallelize

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke run of the script


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def train_steps(model, opt, batches, steps: int) -> float:
    sync()
    start = time.perf_counter()
    for ids in batches[:steps]:
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--breakdown", action="store_true", help="also time each part alone")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    dist.init_process_group(
        "nccl" if DEVICE == "cuda" else "gloo",
        init_method=f"file://{tmp}/store",
        rank=0,
        world_size=1,
        timeout=timedelta(seconds=120),
    )
    mesh = init_device_mesh(DEVICE, (1,))
    cfg = get_preset(args.preset)
    plain = build_model(cfg, device=DEVICE, seed=0)
    forced = dict(apply_at_world_size_1=True)
    variants = {
        "parallelize(W=1)": ParallelConfig(),
        "  forced: all": ParallelConfig(**forced),
        "  forced: FSDP2": ParallelConfig(
            expert_parallel=False, shard_engram_tables=False, **forced
        ),
        "  forced: EP+tables": ParallelConfig(fsdp=False, **forced),
    }
    if not args.breakdown:
        variants = dict(list(variants.items())[:2])
    models = {"plain": plain}
    for name, pc in variants.items():
        models[name] = parallelize(build_model(cfg, device=DEVICE, seed=0), mesh, pc)
    # without FSDP the dense parameters stay plain tensors beside DTensor shards, which
    # foreach AdamW cannot mix
    opts = {
        k: torch.optim.AdamW(m.parameters(), lr=1e-4, foreach="EP+tables" not in k)
        for k, m in models.items()
    }
    g = torch.Generator(device=DEVICE).manual_seed(0)
    batches = [
        torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1), device=DEVICE, generator=g)
        for _ in range(args.steps)
    ]
    for name, m in models.items():  # warm-up (allocator, autotuning)
        train_steps(m, opts[name], batches, 2)
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(reversed(models))
        for name in order:
            times[name].append(train_steps(models[name], opts[name], batches, args.steps))
    ratios = {
        name: [w / p for w, p in zip(ts, times["plain"], strict=True)] for name, ts in times.items()
    }
    tokens = args.batch * args.seq * args.steps
    print(
        f"\npreset {args.preset}, {args.batch}x{args.seq} tokens/step, {args.rounds} rounds "
        f"of {args.steps} steps, {torch.cuda.get_device_name() if DEVICE == 'cuda' else 'CPU (smoke run)'}"
    )
    print(f"{'model':<22}{'median step ms':>16}{'tokens/s':>14}{'vs plain':>10}")
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = statistics.median(ratios[name])
        print(f"{name:<22}{med / args.steps * 1e3:>16.1f}{tokens / med:>14,.0f}{ratio:>9.3f}x")
    main_ratios = ratios["parallelize(W=1)"]
    print(
        f"overhead: {100 * (statistics.median(main_ratios) - 1):+.1f}% (median of per-round "
        f"ratios; spread {100 * (min(main_ratios) - 1):+.1f}%..{100 * (max(main_ratios) - 1):+.1f}%)"
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
