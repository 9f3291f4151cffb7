"""Offline tour of engram_sdk.evals in under a minute on a laptop CPU.

1. RULER at 4K and 16K with the oracle (a perfect reader: 100 everywhere) and with a
   Python callable (a regex "grep" baseline that only knows the NIAH needle format);
2. a needle-in-a-codebase grid (this repository's own files as the haystack) through the
   memory pipeline: Memory recalls ~300 tokens, the reader answers from them, and the report
   shows retrieval recall next to the end-to-end score.

    python examples/eval_quick.py --out eval-quick
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from engram_sdk.evals import (
    CallableAdapter,
    MemoryAdapter,
    OracleAdapter,
    markdown,
    run_niah,
    run_ruler,
)


def grep_model(prompt: str) -> str:
    """Answers NIAH questions by regex over the prompt; knows nothing else."""
    m = re.search(r"for ([\w-]+) mentioned in the provided text", prompt)
    if not m:
        return ""
    found = re.findall(rf"for {re.escape(m.group(1))} is: (\S+?)\.", prompt)
    return ", ".join(found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="eval-quick")
    args = ap.parse_args()
    tasks = "niah_single_1,niah_multikey_2,niah_multivalue,vt,cwe,fwe,qa_synthetic"
    for model in (OracleAdapter(), CallableAdapter(grep_model, name="grep-baseline")):
        report = run_ruler(
            model, tasks=tasks, lengths=[4096, 16384], n_samples=3, out_dir=args.out, progress=False
        )
        print(markdown(report))
    repo = Path(__file__).resolve().parents[1] / "evals"
    memory = MemoryAdapter(OracleAdapter(), max_tokens=300)
    report = run_niah(
        memory,
        lengths=[4096, 16384],
        depths=[0, 50, 100],
        out_dir=args.out,
        haystack=str(repo),
        progress=False,
    )
    print(markdown(report))
    print(f"reports and plots in {args.out}/")


if __name__ == "__main__":
    main()
