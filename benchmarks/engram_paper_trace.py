"""Summaries of a torch-profiler chrome trace of training steps: where a step's time goes.

Used by ``engram_paper_train_profile.py``. From one trace (``prof.export_chrome_trace``) of
``steps`` steps, each inside a ``record_function("step")`` on the launching thread:

- the compute stream (the stream with the most kernel time): busy (union of its kernels)
  and idle milliseconds per step within the steps' window; idle time is the GPU waiting
  for the launching thread (a host stall or a sync) or for another stream;
- other streams: kernel and copy milliseconds per step (row copies, side-stream hashing);
- CUDA runtime calls per step (count, ms; every thread: backward launches from autograd's
  device thread), those that can block their thread (synchronize, blocking copies, host
  allocations; ``(other thread)`` when not the launching one), the launching thread's
  annotated phases;
- other threads (autograd's, fetch workers): CPU-op milliseconds per step.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# CUDA runtime/driver calls that can hold the calling thread until the device catches up.
BLOCKING = (
    "Synchronize",
    "cudaMemcpy",  # cudaMemcpy (sync) and cudaMemcpyAsync from pageable memory
    "cudaHostAlloc",
    "cudaFreeHost",
    "cudaHostRegister",
    "cudaMalloc",
    "cudaFree",
    "cuMemcpy",
)


@dataclass
class StepSummary:
    """One placement's profiled steps, per step (milliseconds unless a count)."""

    steps: int
    wall_ms: float = 0.0
    compute_busy_ms: float = 0.0
    compute_idle_ms: float = 0.0
    other_streams_ms: float = 0.0
    api_calls: float = 0.0
    api_ms: float = 0.0
    blocking: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (n, ms)
    phases_ms: dict[str, float] = field(default_factory=dict)  # annotated phases, host side
    worker_ms: float = 0.0  # CPU ops on threads other than the launching one
    cpu_ops_ms: dict[str, float] = field(default_factory=dict)  # launching thread, by op name
    kernels_ms: dict[str, float] = field(default_factory=dict)  # GPU kernels and copies, by name

    def row(self) -> str:
        blocking = sum(ms for _, ms in self.blocking.values())
        calls = sum(n for n, _ in self.blocking.values())
        return (
            f"{self.wall_ms:8.1f} {self.compute_busy_ms:9.1f} {self.compute_idle_ms:8.2f} "
            f"{self.other_streams_ms:8.2f} {self.api_calls:7.0f} {self.api_ms:7.1f} "
            f"{calls:6.1f} {blocking:8.2f} {self.worker_ms:8.1f}"
        )


HEADER = (
    f"{'placement':24} {'step ms':>8} {'GPU busy':>9} {'GPU idle':>8} {'side ms':>8} "
    f"{'API n':>7} {'API ms':>7} {'blk n':>6} {'blk ms':>8} {'workers':>8}"
)
LEGEND = (
    "per step: GPU busy/idle = the compute stream's kernels (union) and the gaps between them "
    "inside the steps' window; side ms = kernels and copies on other streams; API = CUDA "
    "runtime calls (all threads); blk = those that can block their thread (synchronize, "
    "blocking copies, host/device allocation); workers = CPU-op ms on other threads "
    "(autograd's backward thread, fetch workers)"
)


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def summarize(trace_path: Path, steps: int) -> StepSummary:
    """The per-step summary of a chrome trace holding ``steps`` annotated steps.

    The step time is the device's (first to last GPU event) when the trace has any, else
    the launching thread's; host events count inside the launching thread's steps.
    """
    events = [e for e in json.loads(trace_path.read_text())["traceEvents"] if e.get("ph") == "X"]
    marks = [e for e in events if e.get("cat") == "user_annotation" and e["name"] == "step"]
    out = StepSummary(steps=max(len(marks), 1))
    if not marks:
        return out
    main = (marks[0]["pid"], marks[0]["tid"])
    t0 = min(e["ts"] for e in marks)  # the host's window: the launching thread's steps
    t1 = max(e["ts"] + e["dur"] for e in marks)
    n = out.steps
    out.wall_ms = (t1 - t0) / 1e3 / n
    gpu = [e for e in events if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    by_stream: dict[object, list[tuple[float, float]]] = defaultdict(list)
    kernels: Counter[str] = Counter()
    for e in gpu:  # the trace starts after a sync and ends with one: all of it is the steps'
        by_stream[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
        kernels[e["name"][:70]] += e["dur"] / 1e3 / n
    out.kernels_ms = dict(kernels)
    if by_stream:
        g0 = min(a for ivs in by_stream.values() for a, _ in ivs)
        g1 = max(b for ivs in by_stream.values() for _, b in ivs)
        out.wall_ms = (g1 - g0) / 1e3 / n  # the device's time for the steps (host may lead)
        compute = max(by_stream, key=lambda s: sum(b - a for a, b in by_stream[s]))
        busy = _union(by_stream[compute])
        out.compute_busy_ms = busy / 1e3 / n
        out.compute_idle_ms = (g1 - g0 - busy) / 1e3 / n
        other = [iv for s, ivs in by_stream.items() if s != compute for iv in ivs]
        out.other_streams_ms = sum(b - a for a, b in other) / 1e3 / n
    blocking: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    cpu_ops: Counter[str] = Counter()
    for e in events:
        if not t0 <= e["ts"] <= t1:
            continue
        on_main = (e["pid"], e["tid"]) == main
        cat = e.get("cat")
        if cat in ("cuda_runtime", "cuda_driver"):
            out.api_calls += 1 / n
            out.api_ms += e["dur"] / 1e3 / n
            if any(word in e["name"] for word in BLOCKING):
                key = e["name"] if on_main else f"{e['name']} (other thread)"
                blocking[key][0] += 1 / n
                blocking[key][1] += e["dur"] / 1e3 / n
        elif on_main and cat == "user_annotation" and e["name"] != "step":
            out.phases_ms[e["name"]] = out.phases_ms.get(e["name"], 0.0) + e["dur"] / 1e3 / n
        elif cat == "cpu_op" and on_main:
            cpu_ops[e["name"]] += e["dur"] / 1e3 / n
        elif cat == "cpu_op" and e["pid"] == main[0]:
            out.worker_ms += e["dur"] / 1e3 / n
    out.blocking = {k: (v[0], v[1]) for k, v in blocking.items()}
    out.cpu_ops_ms = dict(cpu_ops)
    return out


def report(summaries: dict[str, StepSummary], baseline: str) -> list[str]:
    """The per-placement table, the blocking calls and annotated phases, and the launching
    thread's CPU ops that differ most from ``baseline`` (inclusive times: nested ops repeat)."""
    lines = [HEADER]
    lines += [f"{name:24} {s.row()}" for name, s in summaries.items()]
    lines.append(LEGEND)
    for name, s in summaries.items():
        calls = ", ".join(f"{k} {n:.1f}x {ms:.2f} ms" for k, (n, ms) in sorted(s.blocking.items()))
        phases = ", ".join(f"{k} {ms:.2f}" for k, ms in s.phases_ms.items())
        lines.append(f"  {name}: host phases ms/step: {phases or '-'}; blocking: {calls or 'none'}")
    base = summaries.get(baseline)
    for name, s in summaries.items():
        if base is None or s is base or name.startswith("gpu"):
            continue
        keys = set(s.cpu_ops_ms) | set(base.cpu_ops_ms)
        diff = sorted(keys, key=lambda k: -abs(s.cpu_ops_ms.get(k, 0) - base.cpu_ops_ms.get(k, 0)))
        top = ", ".join(
            f"{k} {base.cpu_ops_ms.get(k, 0):.2f}->{s.cpu_ops_ms.get(k, 0):.2f}" for k in diff[:6]
        )
        lines.append(f"  launching thread's ops vs {baseline}, ms/step ({name}): {top}")
        lines += _kernel_diff(name, s.kernels_ms, base.kernels_ms, baseline)
    return lines


def _kernel_diff(
    name: str, got: dict[str, float], base: dict[str, float], baseline: str
) -> list[str]:
    """The GPU kernels (or copies) whose time per step differs most from the baseline's."""
    keys = sorted(set(got) | set(base), key=lambda k: -abs(got.get(k, 0) - base.get(k, 0)))
    total = sum(got.values()) - sum(base.values())
    lines = [f"  GPU kernels vs {baseline} ({name}): total {total:+.2f} ms/step; largest:"]
    for k in keys[:5]:
        lines.append(f"    {base.get(k, 0):8.3f} -> {got.get(k, 0):8.3f} ms  {k}")
    return lines
