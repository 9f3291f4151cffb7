"""Recall for chat of this checkout against a baseline checkout: the prompt blocks, same memory.

    python benchmarks/recall_ab.py --baseline /path/to/checkout [--store lmdb:///tmp/mem100]
        [--questions 300]

Each side, in its own process (the baseline's ``engram_sdk`` first on ``PYTHONPATH``), renders
the recalled block and citations of the quickstart reader's ten questions over Python's
``json`` package, in both prompt formats, and, with ``--store``, of ``--questions`` questions
of ``engram bench serve`` (``What follows <four words of a passage>?``) in the ``focus``
format, with the CPU time each recall took. Prints how many blocks are byte-identical, the
questions whose blocks differ, and the recall CPU of both sides (p50 / mean), so a change to
how recall searches shows what it changes in the prompts, with no model needed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import hashlib, json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from quickstart_reader import QUESTIONS
from engram_sdk.bench.serve_parts import sample_questions
from engram_sdk.llm.openai_http import OpenAIBackend
from engram_sdk.llm.recall import recall_passages
from engram_sdk.memory import Memory
store, n = sys.argv[2], int(sys.argv[3])
backend = OpenAIBackend("http://127.0.0.1:9/v1", model="x")  # counting only, never called
out = {}

def render(mem, question, context):
    t0 = time.thread_time()
    got = recall_passages(backend, mem, query=question, scope="default", budget=384,
                          context=context)
    ms = (time.thread_time() - t0) * 1e3
    digest = hashlib.md5(got.block.encode()).hexdigest()
    return [digest, [c.label for c in got.citations], ms]

with tempfile.TemporaryDirectory() as work, Memory.open(f"lmdb://{work}/m") as mem:
    mem.ingest(Path(json.__file__).parent, progress=False)
    for question, _ in QUESTIONS:
        for context in ("passages", "focus"):
            out[f"quickstart {context}: {question}"] = render(mem, question, context)
if store:
    with Memory.open(store, mode="r") as mem:
        for q in sample_questions(mem, n):
            question = f"What follows {q}?"
            out[f"bench focus: {question}"] = render(mem, question, "focus")
print(json.dumps(out))
"""


def _side(python: str, pythonpath: str, store: str, n: int) -> dict[str, list]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    args = [python, "-c", CHILD, str(ROOT / "benchmarks"), store, str(n)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True, cwd="/")
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="a folder holding the baseline checkout")
    ap.add_argument("--store", default="", help="a memory to ask the bench's questions of")
    ap.add_argument("--questions", type=int, default=300)
    args = ap.parse_args()
    base = _side(sys.executable, str(Path(args.baseline).resolve()), args.store, args.questions)
    this = _side(sys.executable, str(ROOT), args.store, args.questions)
    differ = [q for q in this if this[q][:2] != base[q][:2]]
    print(f"{len(this) - len(differ)} of {len(this)} recall blocks byte-identical")
    for q in differ:
        print(f"  differs: {q}\n    baseline {base[q][1]}\n    this     {this[q][1]}")
    for name, side in (("baseline", base), ("this", this)):
        ms = [v[2] for k, v in side.items() if k.startswith("bench")]
        if ms:
            print(
                f"{name}: recall CPU p50 {statistics.median(ms):.2f} ms, mean "
                f"{statistics.fmean(ms):.2f} ms over {len(ms)} bench questions"
            )


if __name__ == "__main__":
    main()
