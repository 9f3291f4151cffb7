"""Reports: scores per task × length (RULER) or depth × length (NIAH), as JSON, a Markdown
table, a NIAH heatmap and a RULER line plot (matplotlib, Agg backend)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from engram_sdk.evals.runner import Prediction
from engram_sdk.evals.scoring import get_metric, postprocess
from pydantic import BaseModel, Field

REPORT_FORMAT_VERSION = 1


class Cell(BaseModel):
    """The score of one task (or NIAH depth) at one length."""

    task: str
    length: int
    depth: float | None = None
    score: float  # ×100, RULER's metric over the cell's samples
    n: int
    recall: float | None = None  # memory pipeline: % of references inside the recalled context
    nulls: int = 0  # RULER's count of empty predictions (after clean-up)
    judged: bool = False  # score is a model judge's grade (×10), not the string metric


class EvalReport(BaseModel):
    """A saved evaluation result."""

    format_version: int = REPORT_FORMAT_VERSION
    kind: str  # "ruler" | "niah"
    model: str
    counter: str
    seed: int
    created: str = Field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    tasks: list[str]
    lengths: list[int]
    depths: list[float] = Field(default_factory=list)
    cells: list[Cell]
    average: dict[int, float]  # per length: mean over tasks (RULER) or depths (NIAH)
    recall_average: dict[int, float] = Field(default_factory=dict)

    def score(self, task: str, length: int, depth: float | None = None) -> float | None:
        for c in self.cells:
            if c.task == task and c.length == length and c.depth == depth:
                return c.score
        return None


def build_report(
    kind: str, model: str, counter: str, seed: int, preds: Sequence[Prediction]
) -> EvalReport:
    """Aggregate predictions with each task's RULER metric (×100, 2 decimals)."""
    groups: dict[tuple[str, int, float | None], list[Prediction]] = defaultdict(list)
    for p in preds:
        groups[(p.task, p.length, p.depth if kind == "niah" else None)].append(p)
    cells = []
    for (task, length, depth), ps in groups.items():
        cleaned = [postprocess(p.prediction) for p in ps]
        judged = all("judge_score" in p.info for p in ps)
        if judged:
            score = round(100 * sum(p.score for p in ps) / len(ps), 2)
        else:
            score = get_metric(ps[0].metric)(cleaned, [p.outputs for p in ps])
        rec = [p.info["recall"] for p in ps if "recall" in p.info]
        cells.append(
            Cell(
                task=task,
                length=length,
                depth=depth,
                n=len(ps),
                score=score,
                recall=round(100 * sum(rec) / len(rec), 2) if rec else None,
                nulls=sum(not c for c in cleaned),
                judged=judged,
            )
        )
    tasks = list(dict.fromkeys(p.task for p in preds))
    lengths = sorted({p.length for p in preds})
    depths = sorted({p.depth for p in preds if p.depth is not None}) if kind == "niah" else []
    avg, ravg = {}, {}
    for n in lengths:
        cs = [c for c in cells if c.length == n]
        avg[n] = round(sum(c.score for c in cs) / len(cs), 2)
        rs = [c.recall for c in cs if c.recall is not None]
        if rs:
            ravg[n] = round(sum(rs) / len(rs), 2)
    return EvalReport(
        kind=kind,
        model=model,
        counter=counter,
        seed=seed,
        tasks=tasks,
        lengths=lengths,
        depths=depths,
        cells=cells,
        average=avg,
        recall_average=ravg,
    )


def _k(n: int) -> str:
    return (
        f"{n // 1024}K"
        if n % 1024 == 0 and n >= 1024
        else (f"{n // 1000}k" if n % 1000 == 0 else str(n))
    )


def _avg_cell(report: EvalReport, n: int, total: int) -> str:
    have = sum(1 for c in report.cells if c.length == n)
    avg = f"**{report.average[n]:.1f}**"
    return avg if have >= total else f"{avg} ({have}/{total})"


def _nulls(report: EvalReport, n: int) -> str:
    """RULER's "Nulls": empty predictions / predictions, at one length."""
    cells = [c for c in report.cells if c.length == n]
    return f"{sum(c.nulls for c in cells)}/{sum(c.n for c in cells)}"


def markdown(report: EvalReport) -> str:
    """Tasks (or depths) × lengths with the average row; a recall table for the memory pipeline."""
    head = (
        "| "
        + ("depth" if report.kind == "niah" else "task")
        + " | "
        + " | ".join(_k(n) for n in report.lengths)
        + " |"
    )
    sep = "|---|" + "---:|" * len(report.lengths)
    rows = [
        f"**{report.model}** ({report.kind}, lengths in {report.counter} tokens, seed {report.seed})",
        "",
        head,
        sep,
    ]
    keys = report.depths if report.kind == "niah" else report.tasks
    for key in keys:
        vals = []
        for n in report.lengths:
            s = report.score("niah", n, key) if report.kind == "niah" else report.score(key, n)
            if report.kind == "niah" and s is None:
                s = next((c.score for c in report.cells if c.length == n and c.depth == key), None)
            vals.append("–" if s is None else f"{s:.1f}")
        label = f"{key:g}%" if report.kind == "niah" else key
        rows.append(f"| {label} | " + " | ".join(vals) + " |")
    rows.append(
        "| **average** | "
        + " | ".join(_avg_cell(report, n, len(keys)) for n in report.lengths)
        + " |"
    )
    rows.append("| nulls | " + " | ".join(_nulls(report, n) for n in report.lengths) + " |")
    if report.recall_average:
        rows += [
            "",
            "Retrieval recall (% of references inside the context handed to the reader):",
            "",
            head,
            sep,
        ]
        for key in keys:
            vals = []
            for n in report.lengths:
                r = next(
                    (
                        c.recall
                        for c in report.cells
                        if c.length == n
                        and (c.depth == key if report.kind == "niah" else c.task == key)
                    ),
                    None,
                )
                vals.append("–" if r is None else f"{r:.1f}")
            label = f"{key:g}%" if report.kind == "niah" else key
            rows.append(f"| {label} | " + " | ".join(vals) + " |")
        rows.append(
            "| **average** | "
            + " | ".join(f"**{report.recall_average.get(n, 0):.1f}**" for n in report.lengths)
            + " |"
        )
    return "\n".join(rows) + "\n"


def plot_niah(report: EvalReport, path: str | Path) -> Path:
    """Heatmap of score by depth (rows) and length (columns), green = found."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.full((len(report.depths), len(report.lengths)), np.nan)
    for c in report.cells:
        if c.depth is not None:
            grid[report.depths.index(c.depth), report.lengths.index(c.length)] = c.score
    fig, ax = plt.subplots(
        figsize=(
            max(5.0, 2.0 + 0.9 * len(report.lengths)),
            max(3.2, 1.2 + 0.45 * len(report.depths)),
        )
    )
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(report.lengths)), [_k(n) for n in report.lengths])
    ax.set_yticks(range(len(report.depths)), [f"{d:g}%" for d in report.depths])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("needle depth")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=8)
    ax.set_title(f"NIAH: {report.model}\n({report.counter} tokens)", fontsize=9)
    fig.colorbar(im, ax=ax, label="score")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_ruler(report: EvalReport, path: str | Path) -> Path:
    """Score vs length, one line per task plus the average (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for t in report.tasks:
        pts = sorted((c.length, c.score) for c in report.cells if c.task == t)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=t, linewidth=1.2)
    ax.plot(
        report.lengths,
        [report.average[n] for n in report.lengths],
        "k--",
        marker="s",
        label="average",
        linewidth=2,
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(report.lengths, [_k(n) for n in report.lengths])
    ax.set_ylim(-3, 103)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("score")
    ax.set_title(f"RULER: {report.model} ({report.counter} tokens)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_report(report: EvalReport, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` (heatmap or line plot) in ``out_dir``."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"json": d / f"{stem}.json", "md": d / f"{stem}.md", "png": d / f"{stem}.png"}
    paths["json"].write_text(report.model_dump_json(indent=2) + "\n", "utf-8")
    paths["md"].write_text(markdown(report), "utf-8")
    (plot_niah if report.kind == "niah" else plot_ruler)(report, paths["png"])
    return paths
