"""GPU benchmark: Engram tables on the GPU vs served from stores through the prefetcher.

    python benchmarks/prefetch_gpu.py [--table-size 2000000] [--folder /tmp/engram-prefetch]

Same model (small preset, Engram at layers 1 and 4, tables of several GB), same batches
(distinct random batches of 4 x 4096 from pinned host memory, cycled): prefill step time,
training step time (Engram tables frozen in every placement, so the rows are the only
difference) and per-token decode latency (batch 1 after a 512-token prompt), for (a)
GPU-resident tables, (b) ``dram://`` (pinned), (c) ``shards://`` in the page cache, (d)
``lmdb://``; overhead of each versus (a). ``+next`` rows call ``prefetch_next`` for the
following batch before each step, so its rows load while the current step computes. Also
checks that (b)-(d) give logits bitwise equal to (a). Step times are medians over the steps.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def median_step(step, n: int) -> float:
    step(0)
    torch.cuda.synchronize()
    times = []
    for i in range(1, n + 1):
        t = time.perf_counter()
        step(i)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(model, batches, prompt, ahead: bool, steps: int) -> dict[str, float]:
    """Prefill, training-step and per-token decode times of one placement."""
    from engram_sdk.model import ModelCache

    from engram_sdk.prefetch import prefetch_next

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
    targets = [b[:, 1:].cuda() for b in batches]

    def ids(i: int) -> torch.Tensor:
        return batches[i % len(batches)][:, :-1]

    def prefill(i: int) -> None:
        if ahead:  # the next batch's rows load while this one computes
            prefetch_next(model, ids(i + 1))
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(ids(i))

    def train_step(i: int) -> None:
        if ahead:
            prefetch_next(model, ids(i + 1))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(ids(i))
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets[i % len(batches)].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def decode(_: int) -> None:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            cache = ModelCache()
            logits = model(prompt, cache)[:, -1]
            for _ in range(32):
                token = logits.argmax(-1, keepdim=True).cpu()  # generation feeds host ids
                logits = model(token, cache)[:, -1]

    return {
        "prefill_s": median_step(prefill, steps),
        "train_s": median_step(train_step, steps),
        "decode_token_s": median_step(decode, 3) / 33,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--table-size", type=int, default=2_000_000)
    parser.add_argument("--folder", default="/tmp/engram-prefetch")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--placements", default="gpu,dram,dram+next,shards+next,lmdb+next")
    args = parser.parse_args()
    from engram_sdk.model import build_model, get_preset

    from engram_sdk.prefetch import attach_store_tables

    cfg = get_preset("small", engram_table_size=[args.table_size] * 2)
    gen = torch.Generator().manual_seed(0)
    batches = [
        torch.randint(0, cfg.vocab_size, (4, 4097), generator=gen).pin_memory() for _ in range(4)
    ]
    prompt = batches[0][:1, :512]
    folder = Path(args.folder)
    shutil.rmtree(folder, ignore_errors=True)
    results: dict[str, dict] = {}
    reference = None
    table_gb = 0.0
    for name in args.placements.split(","):
        model = build_model(cfg, device="cuda", seed=0)
        for table in model.engram_tables().values():
            table.requires_grad_(False)  # frozen everywhere: only the rows' placement differs
        table_gb = sum(t.rows * t.dim * 4 for t in model.engram_tables().values()) / 1e9
        store = stats = None
        if name != "gpu":
            kind = name.split("+")[0]
            uri = "dram://" if kind == "dram" else f"{kind}://{folder / name}"
            t = time.perf_counter()
            store, stats = attach_store_tables(model, uri)
            print(
                f"{name}: exported {table_gb:.1f} GB in {time.perf_counter() - t:.0f} s", flush=True
            )
        with torch.no_grad():
            logits = model(batches[1][:, :-1])
        if reference is None:
            reference = logits
        row = {"same_logits": torch.equal(logits, reference)}
        row |= measure(model, batches, prompt, name.endswith("+next"), args.steps)
        if stats is not None:
            row["dedup_ratio"] = stats.dedup_ratio
            row["wait_ms_per_fetch"] = stats.wait_seconds / max(stats.fetches, 1) * 1e3
            row["fetch_ms"] = stats.fetch_seconds / max(stats.fetches, 1) * 1e3
        results[name] = row
        print(
            name,
            {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()},
            flush=True,
        )
        del model
        if store is not None:
            store.close()
        torch.cuda.empty_cache()
    a = results[next(iter(results))]
    print(
        f"\ntables: {table_gb:.1f} GB in 2 Engram layers (frozen); prefill/train batch 4x4096; "
        "decode batch 1 after 512 tokens; baseline: first row"
    )
    print(
        f"{'placement':12} {'same':>5} {'prefill ms':>11} {'ovh':>7} {'train ms':>9} {'ovh':>7} "
        f"{'decode ms/tok':>14} {'ovh':>7} {'dedup':>6} {'fetch ms':>9} {'wait ms':>8}"
    )
    for name, r in results.items():

        def ovh(key: str, r: dict = r) -> str:
            return f"{(r[key] / a[key] - 1) * 100:+.1f}%"

        print(
            f"{name:12} {r['same_logits']!s:>5} {r['prefill_s'] * 1e3:11.2f} {ovh('prefill_s'):>7} "
            f"{r['train_s'] * 1e3:9.2f} {ovh('train_s'):>7} {r['decode_token_s'] * 1e3:14.2f} "
            f"{ovh('decode_token_s'):>7} {r.get('dedup_ratio', 1):6.2f} {r.get('fetch_ms', 0):9.2f} "
            f"{r.get('wait_ms_per_fetch', 0):8.2f}"
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
