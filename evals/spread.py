"""Per-task, per-length scores with their sample count and spread, from saved predictions.

``python -m engram_sdk.evals.spread DIR [DIR ...]`` prints one Markdown table per model found
in the folders' ``predictions.jsonl``: each cell is the mean score over its samples with n,
the last rows the mean over all samples of a length with its standard error and the lowest
task mean (so a headline average hides no weak task).
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

from engram_sdk.evals.runner import Prediction


def load(folders: list[Path]) -> list[Prediction]:
    """Every prediction of the folders (the last record of a sample and model wins)."""
    latest: dict[tuple[str, str], Prediction] = {}
    for folder in folders:
        path = folder / "predictions.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path}: no predictions.jsonl (expected an eval output folder)")
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                p = Prediction.model_validate_json(line)
                latest[(p.sample_id, p.model)] = p
    return list(latest.values())


def _label(length: int) -> str:
    return f"{length // 1048576}M" if length >= 1048576 else f"{length // 1024}K"


def table(preds: list[Prediction]) -> str:
    """The Markdown table of one model's predictions (scores in percent)."""
    cells: dict[tuple[str, int], list[float]] = defaultdict(list)
    for p in preds:
        cells[(p.task, p.length)].append(100 * p.score)
    tasks = sorted({t for t, _ in cells})
    lengths = sorted({n for _, n in cells})
    lines = [
        "| task | " + " | ".join(_label(n) for n in lengths) + " |",
        "|---|" + "---:|" * len(lengths),
    ]
    for t in tasks:
        row = [_cell(cells.get((t, n), [])) for n in lengths]
        lines.append(f"| {t} | " + " | ".join(row) + " |")
    overall, worst = [], []
    for n in lengths:
        scores = [s for t in tasks for s in cells[(t, n)]]
        sd = math.sqrt(sum((s - _mean(scores)) ** 2 for s in scores) / max(1, len(scores) - 1))
        overall.append(
            f"**{_mean(scores):.1f}** ± {sd / math.sqrt(len(scores)):.1f} (n={len(scores)})"
        )
        worst.append(f"{min(_mean(cells[(t, n)]) for t in tasks if cells[(t, n)]):.1f}")
    lines.append("| **all samples** (mean ± s.e.) | " + " | ".join(overall) + " |")
    lines.append("| lowest task mean | " + " | ".join(worst) + " |")
    return "\n".join(lines)


def _cell(scores: list[float]) -> str:
    return f"{_mean(scores):.1f} (n={len(scores)})" if scores else "—"


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def main(argv: list[str]) -> None:
    """Print a table per model of the folders named in ``argv``."""
    if not argv:
        raise SystemExit("usage: python -m engram_sdk.evals.spread DIR [DIR ...]")
    by_model: dict[str, list[Prediction]] = defaultdict(list)
    for p in load([Path(a) for a in argv]):
        by_model[p.model].append(p)
    for model, preds in sorted(by_model.items()):
        print(f"\n### {model}\n\n{table(preds)}")


if __name__ == "__main__":
    main(sys.argv[1:])
