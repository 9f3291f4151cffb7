"""``engram bench hashing``: N-gram addressing throughput, numpy vs torch (CPU, CUDA).

2- and 3-grams with 8 heads each (16 addresses per token), tables of 5 x 129280 rows per
order as in deepseek-ai/Engram. Every path is checked against the numpy result before
it is timed; the table prints tokens/s and the ratio to the numpy baseline of this run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)


def _best_of(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def run_hashing_bench(
    cpu_tokens: int = 1 << 20, gpu_tokens: int = 1 << 25, repeats: int = 5, batch: int = 8
) -> list[dict[str, object]]:
    """Time every available path; returns rows of (path, tokens, seconds, tokens/s, ratio)."""
    import torch

    from engram_sdk.hashing import NgramConfig, NgramHasher

    cfg = NgramConfig(
        vocab_size=62369,
        max_ngram_size=3,
        n_head_per_ngram=8,
        engram_vocab_size=[129280 * 5, 129280 * 5],
        layer_ids=[1],
    )
    hasher = NgramHasher(cfg)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg.vocab_size, size=(batch, cpu_tokens // batch), dtype=np.int64)
    reference = hasher.hash(ids, 1, flat=True)
    rows: list[dict[str, object]] = []

    def record(path: str, n_tokens: int, seconds: float) -> None:
        rows.append(
            {
                "path": path,
                "tokens": n_tokens,
                "seconds": seconds,
                "tokens_per_s": n_tokens / seconds,
            }
        )

    nothing = lambda: None  # noqa: E731
    record(
        "numpy (int64)",
        ids.size,
        _best_of(lambda: hasher.hash(ids, 1, flat=True), repeats, nothing),
    )
    t_ids = torch.from_numpy(ids)
    assert np.array_equal(hasher.hash_torch(t_ids, 1, flat=True).numpy(), reference)
    record(
        "torch cpu (int64)",
        ids.size,
        _best_of(lambda: hasher.hash_torch(t_ids, 1, flat=True), repeats, nothing),
    )
    if torch.cuda.is_available():
        sync = torch.cuda.synchronize
        g_ids = torch.from_numpy(ids).cuda()
        assert np.array_equal(hasher.hash_torch(g_ids, 1, flat=True).cpu().numpy(), reference)
        fused = hasher.hash_torch(g_ids, 1, flat=True, out_dtype=torch.int32, compiled=True)
        assert np.array_equal(fused.cpu().numpy(), reference), "fused CUDA path differs from numpy"
        big = torch.randint(0, cfg.vocab_size, (batch, gpu_tokens // batch), device="cuda")
        record(
            "torch cuda naive (int64)",
            big.numel(),
            _best_of(lambda: hasher.hash_torch(big, 1, flat=True), repeats, sync),
        )
        from engram_sdk.hashing import torch_kernel

        mults = [int(m) for m in hasher.multipliers[1]]
        primes, inv = hasher._primes_on(1, "cuda"), hasher._inverse_primes_on(1, "cuda")

        def compiled() -> object:
            return torch_kernel.addresses_compiled(
                big, mults, primes, cfg.pad_id, None, torch.int32, inv
            )

        def triton_fused() -> object:
            return hasher.hash_torch(big, 1, flat=True, out_dtype=torch.int32, compiled=True)

        record("torch.compile fused (int32)", big.numel(), _best_of(compiled, repeats, sync))
        record("triton fused (int32)", big.numel(), _best_of(triton_fused, repeats, sync))
        out = torch.empty((*big.shape, cfg.heads_total), dtype=torch.int32, device="cuda")
        record(
            "write int32 addresses only (bound)",
            big.numel(),
            _best_of(lambda: out.fill_(1), repeats, sync),
        )
    base = rows[0]["tokens_per_s"]
    for row in rows:
        row["ratio"] = row["tokens_per_s"] / base  # type: ignore[operator]
    return rows


def hashing(
    tokens: Annotated[int, typer.Option(help="tokens hashed per CPU run")] = 1 << 20,
    gpu_tokens: Annotated[int, typer.Option(help="tokens hashed per GPU run")] = 1 << 25,
    repeats: Annotated[int, typer.Option(help="timed repeats (best is kept)")] = 5,
) -> None:
    """Addresses per second for 2+3-grams x 8 heads: numpy, torch CPU and (if present) CUDA."""
    rows = run_hashing_bench(tokens, gpu_tokens, repeats)
    table = Table(title="engram bench hashing (2- and 3-grams, 8 heads each)")
    for col in ("path", "tokens", "tokens/s", "vs numpy"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for r in rows:
        table.add_row(
            str(r["path"]), f"{r['tokens']:,}", f"{r['tokens_per_s']:.3g}", f"{r['ratio']:.2f}x"
        )
    console.print(table)


def register(bench_app: typer.Typer) -> None:
    """Add ``engram bench hashing``."""
    bench_app.command()(hashing)
