"""The paper benchmark's harness: placements, interleaved timing, reports (no sections).

Used by ``engram_paper_gpu.py``. The calls into the table runtime are all in the adapter at
the top (``serve_from_store``).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engram_sdk.table_runtime import attach_tables, table_name

sys.path.insert(0, str(Path(__file__).parent))
from engram_paper_decode import graphed_steps
from engram_paper_parts import Micro, decode_groups, micro_batches


# ---- adapter: the benchmark's only calls into the table runtime ------------------------------
@dataclass
class Served:
    """One placement of a model's Engram rows: its tables and how steps run with them."""

    name: str
    model: torch.nn.Module
    tables: dict
    forward: Callable
    prefetch: Callable[[torch.Tensor], None] = lambda ids: None
    wait: Callable[[], None] = lambda: None
    stats: object = None
    ahead: bool = False
    runtime: object = None  # the TableRuntime serving it (None: rows on the GPU)
    times: dict[str, list[float]] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)  # allocator flushes while timed
    decoded: dict[int, torch.Tensor] = field(default_factory=dict)  # last logits per block

    def activate(self) -> None:
        """Put this placement's tables into the (shared) model."""
        for layer, table in self.tables.items():
            self.model.set_engram_table(layer, table)


def serve_from_store(
    name: str, model: torch.nn.Module, store, *, ahead: bool, **options: int
) -> Served:
    """The model's rows served from ``store`` through the table runtime."""
    rt = attach_tables(model, store, export=False, **options)
    return Served(name, model, dict(rt.tables), rt, rt.prefetch, rt.wait, rt.stats, ahead, rt)


def warm_hot_rows(served: Served, token_ids, limit: int | None = None) -> dict[int, int]:
    """Fill the placement's hot-row caches from sample text (rows admitted per layer)."""
    return served.runtime.warm_hot_rows(token_ids, limit=limit)


def in_place_hits(served: Served) -> tuple[int, int]:
    """(hot-cache hits, rows) of every row its tables read in place so far."""
    if served.runtime is None:
        return 0, 0
    counts = [table.in_place_hits() for table in served.runtime.tables.values()]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def store_table_name(layer: int) -> str:
    """The store table the runtime reads Engram layer ``layer`` from."""
    return table_name(layer)


def stats_line(served: Served) -> str:
    """Rows read per row requested and fetch/wait milliseconds per fetch."""
    s = served.stats
    if s is None:
        return ""
    fetches = max(s.fetches, 1)
    return (
        f"read/requested {s.unique_rows / max(s.rows_requested, 1):.2f}, fetch "
        f"{s.fetch_seconds / fetches * 1e3:.1f} ms, wait {s.wait_seconds / fetches * 1e3:.1f} ms"
    )


# ---- steps and timing -----------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prefill(p: Served, batches: list[Micro], i: int) -> None:
    if p.ahead and i + 1 < len(batches):  # the next batch's rows load while this one computes
        p.prefetch(batches[i + 1].ids)
    with torch.no_grad():
        p.forward(batches[i].ids)


def train(p: Served, batches: list[Micro], i: int, lr: float = 1e-6) -> None:
    if p.ahead and i + 1 < len(batches):
        p.prefetch(batches[i + 1].ids)
    logits = p.forward(batches[i].ids)
    target = batches[i].targets.to(logits.device, non_blocking=True)
    loss = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=-100)
    loss.backward()
    with torch.no_grad():
        for param in p.model.parameters():
            if param.grad is not None:
                param.add_(param.grad, alpha=-lr)
                param.grad = None


def decode(
    p: Served,
    batches: list[Micro],
    i: int,
    new_tokens: int,
    graphed: bool,
    feed: str = "greedy",
    reserve: int | None = None,
) -> float:
    """Seconds of ``new_tokens`` decode steps after the batch's common prompt (prefill untimed);
    ``graphed``: steps replayed as one CUDA graph (``engram_paper_decode.graphed_steps``).
    ``feed``: "greedy" (each step's argmax, as generation feeds it) or "text" (the real text
    that follows the prompt, teacher-forced: the prompt ends early enough for every row;
    ``reserve``: tokens kept after the prompt, default ``new_tokens``: a warm-up passes the
    timed steps' count, so its prefill never holds the text the timed steps are fed)."""
    from engram_sdk.model import ModelCache

    shortest = int((batches[i].targets != -100).sum(1).min())
    text = None
    if feed == "text":  # graphed decoding runs two more steps (warm-up, recording) first
        shortest -= max(new_tokens, reserve or 0) + (2 if graphed else 0)
        text = batches[i].ids[:, shortest:]
    prompt = batches[i].ids[:, :shortest]
    if graphed:
        seconds, logits = graphed_steps(p.model, p.forward, prompt, new_tokens, feed=text)
        p.decoded[i] = logits.cpu()  # the last step's, for the bitwise check
        return seconds
    device = next(p.model.parameters()).device
    with torch.no_grad():
        cache = ModelCache()
        for start in range(
            0, prompt.shape[1], 256
        ):  # chunks: full logits of 64 x 1K tokens are 13 GB
            logits = p.forward(prompt[:, start : start + 256], cache)[:, -1]
        sync(device)
        start = time.perf_counter()
        for k in range(new_tokens):
            # generation feeds host ids
            token = (
                text[:, k : k + 1] if text is not None else logits.argmax(-1, keepdim=True).cpu()
            )
            logits = p.forward(token, cache)[:, -1]
        sync(device)
    seconds = time.perf_counter() - start
    p.decoded[i] = logits.cpu()
    return seconds


def same_decoded(places: list[Served]) -> dict[str, bool]:
    """Each placement's last decode logits of every block bitwise equal to the first's."""
    first = places[0].decoded
    return {
        p.name: all(torch.equal(p.decoded[i], first[i]) for i in first)
        and set(p.decoded) == set(first)
        for p in places
    }


def interleaved(
    places: list[Served],
    phase: str,
    batches: list[Micro],
    block: int,
    device: torch.device,
    before_block: Callable[[Served], None] = lambda p: None,
    new_tokens: int = 16,
    graphed: bool = False,
    feed: str = "greedy",
) -> None:
    """Every placement runs every micro-batch; placements alternate block by block."""
    shapes = {tuple(b.ids.shape): i for i, b in reversed(list(enumerate(batches)))}
    for p in places:  # warm-up: kernels, allocator, first reads; every shape once
        p.times[phase] = []
        p.activate()
        if phase == "decode":
            decode(p, batches, 0, 2, graphed, feed, reserve=new_tokens)
            continue
        for i in sorted(shapes.values()):
            (prefill if phase == "prefill" else train)(p, batches[i : i + 1], 0)
        p.wait()
    for b, first in enumerate(range(0, len(batches), block)):
        rotation = places[b % len(places) :] + places[: b % len(places)]
        for p in rotation:
            p.activate()
            before_block(p)
            retries = alloc_retries(device)
            if phase == "decode":
                p.times[phase].append(decode(p, batches, first, new_tokens, graphed, feed))
            else:
                step = prefill if phase == "prefill" else train
                sync(device)
                start = time.perf_counter()
                for i in range(first, min(first + block, len(batches))):
                    step(p, batches, i)
                p.wait()
                sync(device)
                p.times[phase].append(time.perf_counter() - start)
            p.retries[phase] = p.retries.get(phase, 0) + alloc_retries(device) - retries


def alloc_retries(device: torch.device) -> int:
    """Times the CUDA caching allocator freed its cache to retry an allocation (a stall)."""
    if device.type != "cuda":
        return 0
    return int(torch.cuda.memory_stats(device).get("num_alloc_retries", 0))


def report(title: str, places: list[Served], tokens: dict[str, int]) -> list[str]:
    """Tokens/s per phase and overhead vs the GPU-resident placement(s), with its spread."""
    gpus = [p for p in places if p.name.startswith("gpu")]
    lines = [
        f"\n{title}",
        f"{'placement':24}" + "".join(f" {ph + ' tok/s':>14} {'overhead':>30}" for ph in tokens),
    ]
    for p in places:
        line = f"{p.name:24}"
        for phase, count in tokens.items():
            base = [statistics.fmean(t) for t in zip(*(g.times[phase] for g in gpus), strict=True)]
            ratios = sorted(a / b - 1 for a, b in zip(p.times[phase], base, strict=True))
            q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
            total = sum(p.times[phase]) / sum(base) - 1
            cell = f"{total * 100:+.1f}% ({statistics.median(ratios) * 100:+.1f}% [{q1 * 100:+.1f},{q3 * 100:+.1f}])"
            line += f" {count / sum(p.times[phase]):14.0f} {cell:>30}"
        flushes = "/".join(str(p.retries.get(phase, 0)) for phase in tokens)
        extra = ("  " + stats_line(p) + ", " if p.stats is not None else "  ") + "alloc retries "
        lines.append(line + extra + flushes)
    lines.append(
        "overhead: total time vs the mean of the GPU-resident placements, same batches; in "
        "brackets the median of per-block ratios [25th, 75th percentile]; gpu-again (a second "
        "GPU-resident run) shows the noise floor"
    )
    print("\n".join(lines), flush=True)
    return lines


def same_logits(places: list[Served], batch: Micro) -> dict[str, bool]:
    """Logits of every placement bitwise equal to the first's (no prefetch involved)."""
    out, reference = {}, None
    with torch.no_grad():
        for p in places:
            p.activate()
            logits = p.forward(batch.ids)
            reference = logits if reference is None else reference
            out[p.name] = bool(torch.equal(logits, reference))
    return out


# ---- sections -------------------------------------------------------------------------------------
@dataclass
class Setup:
    device: torch.device
    smoke: bool
    folder: Path
    pad: int
    prefill_tokens: int
    train_tokens: int
    decode_batch: int
    new_tokens: int
    count_tokens: int
    phases: tuple[str, ...] = ("prefill", "train", "decode")
    graphed_decode: bool = False
    huge_pages: bool = False  # section 1's host table in transparent huge pages
    log: list[str] = field(default_factory=list)

    def batches(self, seqs: list[np.ndarray]) -> dict[str, list[Micro]]:
        pin = self.device.type == "cuda"
        return {
            "prefill": micro_batches(seqs, self.prefill_tokens, self.pad, pin),
            "train": micro_batches(seqs, self.train_tokens, self.pad, pin),
            "decode": decode_groups(seqs, self.decode_batch, self.pad, pin),
        }

    def run(
        self, title: str, places: list[Served], seqs, before_block=lambda p: None, graphed=False
    ) -> None:
        """Every phase of every placement, interleaved; ``graphed``: decode as CUDA graphs."""
        batches = self.batches(seqs)
        same = same_logits(places, batches["prefill"][0])
        for phase, blocks in (("prefill", 2), ("train", 4), ("decode", 1)):
            if phase not in self.phases:
                continue
            t = time.perf_counter()
            interleaved(
                places,
                phase,
                batches[phase],
                blocks,
                self.device,
                before_block,
                self.new_tokens,
                graphed,
            )
            print(
                f"  {phase}: {len(batches[phase])} batches x {len(places)} placements in {time.perf_counter() - t:.0f} s",
                flush=True,
            )
        tokens = {ph: sum(b.tokens for b in batches[ph]) for ph in ("prefill", "train")}
        tokens["decode"] = sum(len(b.ids) for b in batches["decode"]) * self.new_tokens
        tokens = {ph: n for ph, n in tokens.items() if ph in self.phases}
        self.log += report(title, places, tokens)
        self.log.append(
            "logits bitwise equal to the first placement: "
            + ", ".join(f"{k} {v}" for k, v in same.items())
        )
        print(self.log[-1], flush=True)
