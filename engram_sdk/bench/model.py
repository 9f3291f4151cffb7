"""``engram bench model``: training and forward throughput of our model vs transformers.

Baseline: ``transformers.DeepseekV3ForCausalLM`` loaded from our own model exported with
``engram_sdk.model.hf.export_hf`` (same config, same weights), measured in the same run on the
same batches (CPU fp32, or CUDA with bf16 autocast). Each row reports tokens/s and its ratio to
the baseline; the first forward's logits are compared so a speed-up never hides a wrong model.
For the full H100 table at sequence 4096 run ``python benchmarks/model_gpu.py``.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from typing import Annotated, Any

import torch
import torch.nn.functional as F
import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)


def _measure(model: torch.nn.Module, ids: torch.Tensor, steps: int, logits_of: Any) -> dict:
    device = ids.device
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = ids[:, :-1].numel()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        with autocast:
            logits = logits_of(model, ids[:, :-1])
            loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    step()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    train = steps * tokens / (time.perf_counter() - t)
    model.eval()
    with torch.no_grad(), autocast:
        logits_of(model, ids[:, :-1])
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            logits_of(model, ids[:, :-1])
        sync()
    fwd = steps * tokens / (time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"train": train, "fwd": fwd, "peak": peak}


def run_bench(
    preset: str = "tiny", batch: int = 2, seq: int = 128, steps: int = 5, device: str = "auto"
) -> list[dict]:
    """Rows ``{name, train, fwd, peak, train_ratio, fwd_ratio}``; the first row is the baseline."""
    import transformers

    from engram_sdk.model import build_model, get_preset
    from engram_sdk.model.hf import export_hf

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = get_preset(preset)
    plain = cfg.model_copy(update={"engram_layer_ids": [], "hc_mult": 1, "dsa_topk": 0})
    ours = build_model(plain, device="cpu", seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        export_hf(ours, tmp)
        hf = transformers.DeepseekV3ForCausalLM.from_pretrained(tmp, torch_dtype=torch.float32)
    hf, ours = hf.to(device), ours.to(device)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, plain.vocab_size, (batch, seq + 1), generator=gen).to(device)
    with torch.no_grad():
        hf.eval(), ours.eval()
        diff = (hf(ids[:, :-1]).logits - ours(ids[:, :-1])).abs().max().item()
    rows = [
        {"name": "transformers DeepseekV3ForCausalLM (baseline)"}
        | _measure(hf, ids, steps, lambda m, x: m(x).logits),
        {"name": "ours, Engram/mHC/DSA off"} | _measure(ours, ids, steps, lambda m, x: m(x)),
    ]
    hf = ours = None
    if cfg.engram_layer_ids or cfg.hc_mult != 1:
        full = build_model(cfg, device=device, seed=0)
        rows.append({"name": f"ours, {preset} as configured"} | _measure(full, ids, steps, _call))
    for r in rows:
        r["train_ratio"] = r["train"] / rows[0]["train"]
        r["fwd_ratio"] = r["fwd"] / rows[0]["fwd"]
        r["max_logit_diff"] = diff
    return rows


def _call(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def register(bench_app: typer.Typer) -> None:
    """Add ``engram bench model``."""

    @bench_app.command("model")
    def bench_model(
        preset: Annotated[str, typer.Option(help="tiny | small | base")] = "tiny",
        batch: Annotated[int, typer.Option(help="sequences per step")] = 2,
        seq: Annotated[int, typer.Option(help="tokens per sequence")] = 128,
        steps: Annotated[int, typer.Option(help="timed steps")] = 5,
        device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    ) -> None:
        """Train/forward tokens/s of our model vs transformers' DeepSeek-V3 (same weights)."""
        rows = run_bench(preset, batch, seq, steps, device)
        table = Table(title=f"model {preset}, batch {batch} x {seq}, {steps} steps, AdamW")
        for col in ("implementation", "train tok/s", "ratio", "forward tok/s", "ratio", "peak"):
            table.add_column(col, justify="left" if col == "implementation" else "right")
        for r in rows:
            peak = "-" if r["peak"] is None else f"{r['peak']:.2f} GiB"
            table.add_row(
                r["name"],
                f"{r['train']:,.0f}",
                f"{r['train_ratio']:.2f}x",
                f"{r['fwd']:,.0f}",
                f"{r['fwd_ratio']:.2f}x",
                peak,
            )
        console.print(table)
        console.print(f"max |logits ours - HF| on the first batch: {rows[0]['max_logit_diff']:.2e}")
