"""Chat-length scaling for ``engram bench memory --turns N``: search latency as turns pile up.

Turns are appended one ``add`` at a time into one scope, as a session does; at checkpoints
(10x apart) the number of index segments and the p50/p99 of top-10 searches for earlier
turns' markers are recorded, in wall time and in the searching thread's CPU time (which the
load of other processes disturbs less). The first checkpoint is the baseline of the same run:
flat latency means the later rows stay near it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engram_sdk.memory import Memory

WORDS = [
    "deploy",
    "build",
    "server",
    "nightly",
    "tests",
    "cache",
    "shard",
    "ledger",
    "commit",
    "river",
    "stone",
    "cloud",
]


def turn_text(i: int, rng: np.random.Generator) -> str:
    """A short chat turn with a unique marker."""
    words = " ".join(rng.choice(WORDS, size=12).tolist())
    return f"turn {i}: {words} marker-{i:07d} end"


def scaling(
    folder: Path, turns: int, *, queries: int = 50
) -> list[tuple[int, int, float, float, int, float, float]]:
    """(turns, segments, p50 ms, p99 ms, misses, CPU p50 ms, CPU p99 ms) at each checkpoint."""
    rng = np.random.default_rng(0)
    checkpoints = sorted({c for c in (1_000, 10_000, 100_000, 1_000_000) if c < turns} | {turns})
    rows = []
    with Memory.open(f"lmdb://{folder}", durable=False) as mem:
        done = 0
        for target in checkpoints:
            for i in range(done, target):
                mem.add(turn_text(i, rng), source=f"turn-{i}", scope="chat")
            done = target
            sid = mem.scope_id("chat")
            assert sid is not None
            picks = rng.integers(0, done, size=queries).tolist()
            lat, cpu, misses = [], [], 0
            for i in picks:
                mem.search(f"marker-{i:07d}", k=10, scope="chat")
                start, cpu_start = time.perf_counter(), time.thread_time()
                hits = mem.search(f"marker-{i:07d}", k=10, scope="chat")
                lat.append(time.perf_counter() - start)
                cpu.append(time.thread_time() - cpu_start)
                misses += [h.source for h in hits if h.phrase_match] != [f"turn-{i}"]
            p50, p99 = (float(np.percentile(lat, q)) * 1e3 for q in (50, 99))
            c50, c99 = (float(np.percentile(cpu, q)) * 1e3 for q in (50, 99))
            rows.append((done, mem.index.segment_count(sid), p50, p99, misses, c50, c99))
    return rows
