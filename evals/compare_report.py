"""The comparison's report folder: ``compare.json``, ``compare.md``, heatmaps, the RULER line
plot and an ``index.html`` that shows all of it (no scripts, no network)."""

from __future__ import annotations

import html
from pathlib import Path

from engram_sdk.evals.compare import NOT_IN_WINDOW, CompareCell, CompareConfig, CompareReport
from engram_sdk.evals.report import _k

METRICS = {
    "alone": "end-to-end, model alone",
    "memory": "end-to-end, model through engram memory",
    "recall": "retrieval recall (% of references in the recalled context)",
}


def _value(cell: CompareCell | None, metric: str) -> float | None:
    if cell is None:
        return None
    return {"alone": cell.alone, "memory": cell.memory, "recall": cell.recall}[metric]


def _text(cell: CompareCell | None, metric: str) -> str:
    if cell is None:
        return "–"
    if metric == "alone" and cell.alone is None:
        return cell.alone_status
    v = _value(cell, metric)
    return f"{v:.1f}"


def _rows(report: CompareReport, kind: str) -> list[tuple[str, str, float | None]]:
    """(label, task, depth) of each table row."""
    if kind == "ruler":
        return [(t, t, None) for t in report.tasks]
    return [(f"NIAH depth {d:g}%", "niah", d) for d in report.depths]


def table(report: CompareReport, kind: str, metric: str) -> list[list[str]]:
    """Header + rows (label, one value per length) + the average row."""
    head = ["task" if kind == "ruler" else "depth"] + [_k(n) for n in report.lengths]
    out = [head]
    for label, task, depth in _rows(report, kind):
        out.append([label] + [_text(report.cell(task, n, depth), metric) for n in report.lengths])
    avg = ["**average**"]
    for n in report.lengths:
        cells = [report.cell(t, n, d) for _, t, d in _rows(report, kind)]
        vals = [_value(c, metric) for c in cells]
        if any(v is None for v in vals) or not vals:
            absent = next((c.alone_status for c in cells if c and c.alone is None), "–")
            avg.append(absent if metric == "alone" and vals else "–")
        else:
            avg.append(f"**{sum(vals) / len(vals):.1f}**")  # type: ignore[arg-type]
    return [*out, avg]


def markdown(report: CompareReport) -> str:
    """Every table of the comparison as Markdown."""
    lines = [
        f"# {report.model}: alone vs through engram memory",
        "",
        f"Window {report.window} tokens; memory context budget {report.memory_budget} tokens"
        f" handed to the reader as {report.memory_context!r}; {report.decoding} decoding; "
        f"{report.n_samples} samples per cell; lengths in {report.counter} tokens; "
        f"seed {report.seed}.",
    ]
    for kind, title in (("ruler", "RULER tasks"), ("niah", "NIAH grid")):
        if not _rows(report, kind):
            continue
        for metric, what in METRICS.items():
            t = table(report, kind, metric)
            lines += ["", f"## {title}: {what}", ""]
            lines.append("| " + " | ".join(t[0]) + " |")
            lines.append("|---|" + "---:|" * (len(t[0]) - 1))
            lines += ["| " + " | ".join(r) + " |" for r in t[1:]]
    return "\n".join(lines) + "\n"


def heatmap(report: CompareReport, kind: str, metric: str, path: Path) -> Path:
    """Rows × lengths in red-yellow-green; cells outside the window grey with "n/a"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = _rows(report, kind)
    grid = np.full((len(rows), len(report.lengths)), np.nan)
    for i, (_, task, depth) in enumerate(rows):
        for j, n in enumerate(report.lengths):
            v = _value(report.cell(task, n, depth), metric)
            if v is not None:
                grid[i, j] = v
    fig, ax = plt.subplots(
        figsize=(max(5.0, 2.6 + 0.9 * len(report.lengths)), max(3.0, 1.2 + 0.4 * len(rows)))
    )
    ax.set_facecolor("#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(report.lengths)), [_k(n) for n in report.lengths])
    ax.set_yticks(range(len(rows)), [label.replace("NIAH depth ", "") for label, _, _ in rows])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("task" if kind == "ruler" else "needle depth")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            txt = "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.0f}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8)
    ax.set_title(f"{METRICS[metric]}\n{report.model}", fontsize=9)
    fig.colorbar(im, ax=ax, label="score")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def line_plot(report: CompareReport, path: Path) -> Path:
    """RULER's plot: average score vs length, alone (dashed) and through memory (solid), with
    the memory path's recall (dotted) and each task through memory (thin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for t in report.tasks:
        pts = [(n, c.memory) for n in report.lengths if (c := report.cell(t, n))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=0.8, alpha=0.45, label=t)
    for metric, style in (("memory", "k-"), ("alone", "k--"), ("recall", "b:")):
        xs, ys = [], []
        for n in report.lengths:
            vals = [_value(report.cell(t, n), metric) for t in report.tasks]
            if vals and all(v is not None for v in vals):
                xs.append(n)
                ys.append(sum(vals) / len(vals))  # type: ignore[arg-type]
        ax.plot(xs, ys, style, marker="o", linewidth=2.2, label=f"average: {metric}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(report.lengths, [_k(n) for n in report.lengths])
    ax.set_ylim(-3, 103)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("score")
    ax.set_title(f"RULER: {report.model}, alone vs through engram memory", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _html_table(rows: list[list[str]]) -> str:
    def cell(tag: str, text: str) -> str:
        cls = ' class="na"' if text == NOT_IN_WINDOW else ""
        return f"<{tag}{cls}>{html.escape(text.replace('**', ''))}</{tag}>"

    head = "".join(cell("th", h) for h in rows[0])
    body = "".join("<tr>" + "".join(cell("td", v) for v in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def index_html(report: CompareReport, images: list[tuple[str, str]]) -> str:
    """The page: summary, every table, every image (paths relative to the folder)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.model)}: alone vs engram memory</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
        "padding:.25em .6em;text-align:right}td:first-child{text-align:left}"
        ".na{color:#777;font-style:italic}img{max-width:100%;margin:.5em 0}</style>",
        "</head><body>",
        f"<h1>{html.escape(report.model)}: the model alone vs through engram memory</h1>",
        f"<p>Window {report.window} tokens; memory context budget {report.memory_budget} "
        f"tokens; {report.decoding} decoding; {report.n_samples} samples per cell; lengths in "
        f"{html.escape(report.counter)} tokens; seed {report.seed}; {report.created}. "
        f"Cells whose prompt does not fit the window read “{NOT_IN_WINDOW}”.</p>",
    ]
    for kind, title in (("ruler", "RULER tasks"), ("niah", "NIAH grid")):
        if not _rows(report, kind):
            continue
        for metric, what in METRICS.items():
            parts.append(f"<h2>{title}: {html.escape(what)}</h2>")
            parts.append(_html_table(table(report, kind, metric)))
    parts.append("<h2>Plots</h2>")
    for src, alt in images:
        parts.append(
            f"<figure><img src='{html.escape(src)}' alt='{html.escape(alt)}'>"
            f"<figcaption>{html.escape(alt)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_compare(report: CompareReport, config: CompareConfig) -> dict[str, Path]:
    """Write the folder; returns the paths written by name."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "compare.json", "md": out / "compare.md", "config": out / "config.json"}
    paths["json"].write_text(report.model_dump_json(indent=2) + "\n", "utf-8")
    paths["config"].write_text(config.model_dump_json(indent=2) + "\n", "utf-8")
    paths["md"].write_text(markdown(report), "utf-8")
    images: list[tuple[str, str]] = []
    if report.tasks:
        paths["line"] = line_plot(report, out / "ruler-lines.png")
        images.append(("ruler-lines.png", "RULER: average score vs length"))
    for kind, title in (("ruler", "RULER"), ("niah", "NIAH grid")):
        if not _rows(report, kind):
            continue
        for metric, what in METRICS.items():
            name = f"{kind}-{metric}.png"
            paths[name] = heatmap(report, kind, metric, out / name)
            images.append((name, f"{title}: {what}"))
    paths["html"] = out / "index.html"
    paths["html"].write_text(index_html(report, images), "utf-8")
    return paths
