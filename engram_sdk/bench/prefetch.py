"""``engram bench prefetch``: forward time with Engram tables served from each store.

Baseline: the same model with its GPU-/device-resident ``EmbeddingTable`` (``nn.Embedding``),
measured in the same run on the same batches. Each placement runs the same batches through
the table runtime (``attach_tables``) with ``runtime.prefetch`` double buffering; the table reports the median step time as a ratio to the
baseline and the prefetcher's statistics (rows requested, unique rows, dedup ratio, cache hit
rate, bytes moved, time waited). Logits are checked bitwise against the baseline.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)

PLACEMENTS = ["dram", "shards", "lmdb", "shards+cache"]


def _uri(placement: str, folder: Path) -> tuple[str, int]:
    if placement == "dram":
        return "dram://", 0
    scheme = placement.split("+")[0]
    return f"{scheme}://{folder / placement.replace('+', '_')}", 0


def _run_steps(
    step: Callable[[torch.Tensor], torch.Tensor],
    batches: list[torch.Tensor],
    prefetch: Callable[[torch.Tensor], None] | None,
) -> tuple[list[float], list[torch.Tensor]]:
    """Step times and logits of ``batches``; ``prefetch`` announces each next batch first."""
    times, outs = [], []
    with torch.no_grad():
        for i, ids in enumerate(batches):
            t = time.perf_counter()
            if prefetch is not None and i + 1 < len(batches):
                prefetch(batches[i + 1])
            outs.append(step(ids))
            times.append(time.perf_counter() - t)
    return times, outs


def run_prefetch_bench(
    preset: str = "tiny",
    table_rows: int = 200_003,
    batch: int = 2,
    seq: int = 128,
    steps: int = 6,
    cache_rows: int = 20_000,
    folder: Path | None = None,
    device: str = "cpu",
) -> list[dict[str, object]]:
    """Measure every placement; returns one dict per table row (baseline first)."""
    from engram_sdk.model import build_model, get_preset
    from engram_sdk.table_runtime import attach_tables

    cfg = get_preset(
        preset,
        tokenizer=None,
        vocab_size=1000,
        max_seq_len=max(seq, 64),
        engram_table_size=[table_rows, table_rows],
    )
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 1000, (batch, seq), generator=gen) for _ in range(steps)]
    dev_batches = [b.to(device) for b in batches]
    base = build_model(cfg, device=device, seed=0).eval()
    _run_steps(base, dev_batches[:1], None)
    base_times, want = _run_steps(base, dev_batches, None)
    base_s = statistics.median(base_times[1:])
    table_bytes = sum(t.embedding.weight.numel() * 4 for t in base.engram_tables().values())
    rows: list[dict[str, object]] = [
        {"placement": "device (nn.Embedding)", "median_ms": base_s * 1e3, "ratio": 1.0}
    ]
    tmp = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="engram-bench-prefetch-"))
    try:
        for placement in PLACEMENTS:
            uri, _ = _uri(placement, tmp)
            cache = cache_rows if placement.endswith("cache") else 0
            model = build_model(cfg, device=device, seed=0).eval()
            runtime = attach_tables(model, uri, cache_rows=cache)
            _run_steps(runtime, batches[:1], None)  # warm the page cache and the worker pool
            runtime.stats.reset()
            times, got = _run_steps(runtime, batches, runtime.prefetch)
            equal = all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
            s = statistics.median(times[1:])
            d = runtime.stats.as_dict()
            rows.append(
                {
                    "placement": placement,
                    "median_ms": s * 1e3,
                    "ratio": s / base_s,
                    "bitwise_equal": equal,
                    "dedup_ratio": d["dedup_ratio"],
                    "unique_rows": d["unique_rows"],
                    "rows_requested": d["rows_requested"],
                    "cache_hit_rate": d["cache_hit_rate"],
                    "MB_moved": d["bytes_moved"] / 1e6,
                    "wait_ms_per_step": d["wait_seconds"] * 1e3 / steps,
                }
            )
            runtime.detach()
    finally:
        if folder is None:
            shutil.rmtree(tmp, ignore_errors=True)
    rows[0]["table_MB"] = table_bytes / 1e6
    return rows


def register(bench_app: typer.Typer) -> None:
    """Add ``engram bench prefetch``."""

    @bench_app.command("prefetch")
    def prefetch_cmd(
        preset: Annotated[str, typer.Option(help="model preset")] = "tiny",
        table_rows: Annotated[int, typer.Option(help="rows per N-gram order")] = 200_003,
        batch: Annotated[int, typer.Option(help="sequences per forward step")] = 2,
        seq: Annotated[int, typer.Option(help="tokens per sequence")] = 128,
        steps: Annotated[
            int, typer.Option(min=2, help="forward steps timed; the first one is left out")
        ] = 6,
        cache_rows: Annotated[int, typer.Option(help="hot-row cache size")] = 20_000,
        device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    ) -> None:
        """Forward step time with Engram tables in each store vs on the device."""
        rows = run_prefetch_bench(preset, table_rows, batch, seq, steps, cache_rows, device=device)
        table = Table(
            title=f"prefetch: {rows[0]['table_MB']:.0f} MB of Engram tables, "
            f"batch {batch}x{seq}, ratio = step time / device-resident"
        )
        for col in (
            "placement",
            "ms",
            "ratio",
            "equal",
            "dedup",
            "unique",
            "hit rate",
            "MB moved",
            "wait ms/step",
        ):
            table.add_column(col, justify="left" if col == "placement" else "right")
        for r in rows:
            hit = r.get("cache_hit_rate")
            table.add_row(
                str(r["placement"]),
                f"{r['median_ms']:.1f}",
                f"{r['ratio']:.2f}x",
                str(r.get("bitwise_equal", "-")),
                f"{r['dedup_ratio']:.2f}" if "dedup_ratio" in r else "-",
                str(r.get("unique_rows", "-")),
                f"{hit:.1%}" if isinstance(hit, float) else "-",
                f"{r['MB_moved']:.1f}" if "MB_moved" in r else "-",
                f"{r['wait_ms_per_step']:.2f}" if "wait_ms_per_step" in r else "-",
            )
        console.print(table)
