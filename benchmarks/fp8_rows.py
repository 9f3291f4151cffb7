"""FP8 Engram rows (264 bytes: E4M3 + E8M0 per 32) against float32 and bfloat16 rows of 256
values in the same store: bytes on disk and gather + decode rows/s, side by side.

    python benchmarks/fp8_rows.py [--rows 200000] [--gathers 20] [--batch 8192] [--scheme shards]

Every case runs in this process on the same row ids, round robin, best of three; ratios
are against float32.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from engram_sdk.stores import open_store
from engram_sdk.stores.fp8_rows import create_fp8_table, decode_rows, encode_rows

DIM = 256


def fill(store, rows: np.ndarray) -> None:
    x = torch.from_numpy(rows)
    store.create_table("f32", len(rows), DIM, "float32")
    store.scatter("f32", np.arange(len(rows)), rows)
    store.create_table("bf16", len(rows), DIM, "bfloat16")
    store.scatter("bf16", np.arange(len(rows)), x.to(torch.bfloat16).view(torch.uint16).numpy())
    create_fp8_table(store, "fp8", len(rows), DIM)
    store.scatter("fp8", np.arange(len(rows)), encode_rows(x))


def time_case(store, name: str, batches: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for ids in batches:
        got = store.gather(name, ids)
        if name == "fp8":
            decode_rows(got, DIM)
        elif name == "bf16":
            torch.from_numpy(got.view(np.uint16).astype(np.int32) << 16).view(torch.float32)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--gathers", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--scheme", default="shards", choices=["shards", "lmdb", "dram"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = (rng.standard_normal((args.rows, DIM)) * 0.02).astype(np.float32)
    batches = [rng.integers(0, args.rows, args.batch) for _ in range(args.gathers)]
    with tempfile.TemporaryDirectory() as tmp:
        uri = "dram://" if args.scheme == "dram" else f"{args.scheme}://{Path(tmp) / 's'}"
        with open_store(uri, "w", durable=False) as store:
            fill(store, rows)
            row_bytes = {n: store.table(n).row_bytes for n in ("f32", "bf16", "fp8")}
            for name in ("f32", "bf16", "fp8"):  # warm the page cache once per table
                store.gather(name, batches[0])
            speed = dict.fromkeys(("f32", "bf16", "fp8"), 0.0)
            for _ in range(3):  # round robin, best of three: a shared machine is noisy
                for n in speed:
                    speed[n] = max(speed[n], time_case(store, n, batches))
    print(
        f"| rows {args.rows}, {args.gathers}×{args.batch} random gathers, {args.scheme}:// "
        "| bytes/row | × f32 bytes | rows/s (gather+decode) | × f32 speed |"
    )
    print("|---|---|---|---|---|")
    for name in ("f32", "bf16", "fp8"):
        print(
            f"| {name} | {row_bytes[name]} | {row_bytes[name] / row_bytes['f32']:.3f} "
            f"| {speed[name]:,.0f} | {speed[name] / speed['f32']:.2f} |"
        )


if __name__ == "__main__":
    main()
