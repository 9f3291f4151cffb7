"""The indexer's top-k four ways: tiled torch, recompute-select, single pass, two passes.

python examples/sparse_topk.py [--keys 4096] [--queries 128] [--topk 64]

On a machine without CUDA the Triton kernels run in Triton's CPU interpreter (slow: keep the
sizes small). Recompute-select (the default) writes only each query's maximum per group of
keys, takes the k-th largest maximum τ by a sort-free search, scores again keeping the keys
at or above τ, and picks the top-k of those few by the same search; the single pass writes
every score once and selects from memory. Each gives the same set of keys as the tiled
running top-k.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=4096)
    parser.add_argument("--queries", type=int, default=128)
    parser.add_argument("--topk", type=int, default=64)
    args = parser.parse_args()
    from engram_sdk.model.sparse import indexer_topk
    from engram_sdk.model.sparse_threshold import threshold_topk

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)
    s, t, k = args.keys, args.queries, args.topk
    q = torch.randn(1, t, 4, 32, device=dev, generator=g)
    w = torch.randn(1, t, 4, device=dev, generator=g)
    keys = torch.randn(1, s, 32, device=dev, generator=g)
    pos = (s - t + torch.arange(t, device=dev))[None]
    kp = torch.arange(s, device=dev)
    results = {}
    for name, run in {
        "tiled torch": lambda: indexer_topk(q, w, keys, pos, k),
        "recompute-select": lambda: threshold_topk(
            q, w, keys, pos, k, key_pos=kp, tile_elements=2**20, path="recompute"
        ),
        "single pass (stored)": lambda: threshold_topk(
            q, w, keys, pos, k, key_pos=kp, tile_elements=2**20, path="stored"
        ),
        "two passes": lambda: threshold_topk(
            q, w, keys, pos, k, key_pos=kp, tile_elements=2**20, path="rescored"
        ),
    }.items():
        t0 = time.perf_counter()
        results[name] = run().sort(-1).values
        print(f"{name:22} {time.perf_counter() - t0:8.3f} s")
    want = results["tiled torch"]
    for name, got in results.items():
        print(f"{name:22} same keys as tiled torch: {torch.equal(got, want)}")


if __name__ == "__main__":
    main()
