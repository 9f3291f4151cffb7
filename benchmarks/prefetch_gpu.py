"""GPU benchmark: Engram tables on the GPU vs served from stores through the prefetcher.

    python benchmarks/prefetch_gpu.py [--table-size 2000000] [--folder /tmp/engram-prefetch]

Same model (small preset, Engram at layers 1 and 4), same batch: prefill step time (batch
4 x 4096), training step time (store tables frozen; GPU table trained), and per-token decode
latency (batch 1), for (a) GPU-resident tables, (b) dram://, (c) shards:// in the page cache,
(d) lmdb://; overhead vs (a). ``+next`` rows call ``prefetch_next`` for the following step
before each step (the batch repeats, so each step's rows were fetched during the previous one). Also checks (b)-(d) give logits equal to (a).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def timed(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def measure(
    model: torch.nn.Module, host_ids: torch.Tensor, ids: torch.Tensor, prompt: torch.Tensor,
    ahead: bool, repeats: int,
) -> dict[str, float]:
    """Prefill, training-step and per-token decode times of one placement."""
    from engram_sdk.model import ModelCache

    from engram_sdk.prefetch import prefetch_next

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)

    def prefill() -> None:
        if ahead:  # the next batch's rows load while this one computes
            prefetch_next(model, host_ids[:, :-1])
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(host_ids[:, :-1])

    def train_step() -> None:
        if ahead:
            prefetch_next(model, host_ids[:, :-1])
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(host_ids[:, :-1]).float().flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def decode() -> None:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            cache = ModelCache()
            logits = model(prompt, cache)[:, -1]
            for _ in range(32):
                logits = model(logits.argmax(-1, keepdim=True), cache)[:, -1]

    return {
        "prefill_s": timed(prefill, repeats),
        "train_s": timed(train_step, repeats),
        "decode_token_s": timed(decode, 1) / 33,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--table-size", type=int, default=2_000_000)
    parser.add_argument("--folder", default="/tmp/engram-prefetch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from engram_sdk.model import build_model, get_preset

    from engram_sdk.prefetch import attach_store_tables

    cfg = get_preset("small", engram_table_size=[args.table_size] * 2)
    base = build_model(cfg, device="cuda", seed=0)
    table_gb = sum(t.rows * t.dim * 4 for t in base.engram_tables().values()) / 1e9
    host_ids = torch.randint(0, cfg.vocab_size, (4, 4097)).pin_memory()  # batches come from the host
    ids = host_ids.cuda()
    prompt = host_ids[:1, :512]
    folder = Path(args.folder)
    shutil.rmtree(folder, ignore_errors=True)
    results = {}
    with torch.no_grad():
        reference = base(ids[:, :-1])
    for name in ("gpu", "dram", "dram+next", "shards+next", "lmdb+next"):
        model = build_model(cfg, device="cuda", seed=0)
        store = stats = None
        ahead = name.endswith("+next")
        if name != "gpu":
            kind = name.split("+")[0]
            uri = "dram://" if kind == "dram" else f"{kind}://{folder / name}"
            t = time.perf_counter()
            store, stats = attach_store_tables(model, uri)
            print(
                f"{name}: exported {table_gb:.1f} GB in {time.perf_counter() - t:.0f} s", flush=True
            )
        with torch.no_grad():
            same = torch.equal(model(ids[:, :-1]), reference)
        row = {"same_logits": same, **measure(model, host_ids, ids, prompt, ahead, args.repeats)}
        if stats is not None:
            row["dedup_ratio"] = stats.dedup_ratio
            row["wait_s_per_fetch"] = stats.wait_seconds / max(stats.fetches, 1)
        results[name] = row
        print(name, row, flush=True)
        del model
        if store is not None:
            store.close()
        torch.cuda.empty_cache()
    a = results["gpu"]
    print(
        f"\ntables: {table_gb:.1f} GB in 2 Engram layers; prefill batch 4x4096; decode batch 1 after 512 tokens"
    )
    print(
        f"{'placement':10} {'same':>5} {'prefill ms':>11} {'ovh':>7} {'train ms':>9} {'ovh':>7} {'decode ms/tok':>14} {'ovh':>7}"
    )
    for name, r in results.items():

        def ovh(key: str, r: dict = r) -> str:
            return f"{(r[key] / a[key] - 1) * 100:+.1f}%"

        print(
            f"{name:10} {r['same_logits']!s:>5} {r['prefill_s'] * 1e3:11.1f} {ovh('prefill_s'):>7} "
            f"{r['train_s'] * 1e3:9.1f} {ovh('train_s'):>7} {r['decode_token_s'] * 1e3:14.2f} {ovh('decode_token_s'):>7}"
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
