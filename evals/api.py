"""One-call entry points: :func:`run_ruler` and :func:`run_niah`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from engram_sdk.evals import tasks as registry
from engram_sdk.evals.adapters import Adapter, counter_of
from engram_sdk.evals.haystacks import Haystack, get_haystack
from engram_sdk.evals.length import ReservingCounter, TiktokenCounter, TokenCounter
from engram_sdk.evals.niah import grid_niah
from engram_sdk.evals.report import EvalReport, build_report, write_report
from engram_sdk.evals.runner import PredictionCache, run_samples, write_samples
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import InputError

DEFAULT_DEPTHS = (0.0, 25.0, 50.0, 75.0, 100.0)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "model"


def _set_id(samples: Sequence[Sample]) -> str:
    """A short name for a set of samples (a hash of their ids), so runs never overwrite each other."""
    return hashlib.sha256("".join(s.id for s in samples).encode()).hexdigest()[:12]


def _check_lengths(lengths: Sequence[int]) -> list[int]:
    out = sorted({int(n) for n in lengths})
    if not out or out[0] < 256:
        raise InputError(f"lengths must be >= 256 tokens, got {list(lengths)}")
    return out


def counter_for(model: Adapter, counter: TokenCounter | None = None) -> TokenCounter:
    """How to count lengths for ``model``: ``counter``, else its own tokenizer, else cl100k_base;
    plus the tokens its chat template adds (``template_tokens``)."""
    base = counter or counter_of(model) or TiktokenCounter()
    reserve = int(getattr(model, "template_tokens", 0) or 0)
    return ReservingCounter(base, reserve) if reserve else base


def ruler_samples(
    task_names: Sequence[str] | str,
    lengths: Sequence[int],
    n_samples: int,
    counter: TokenCounter,
    seed: int = 42,
    haystack: Haystack | None = None,
    qa_files: dict[str, str] | None = None,
) -> list[Sample]:
    """Every sample of a RULER run, task by task and length by length."""
    if n_samples < 1:
        raise InputError(f"samples must be >= 1, got {n_samples}")
    names = registry.resolve_tasks(task_names, qa_files)
    return [
        s
        for t in names
        for n in _check_lengths(lengths)
        for s in registry.generate(t, n, n_samples, counter, seed, haystack, qa_files)
    ]


def run_ruler(
    model: Adapter,
    task_names: Sequence[str] | str = "ruler",
    lengths: Sequence[int] = (4096,),
    n_samples: int = 10,
    out_dir: str | Path = "eval-out",
    seed: int = 42,
    counter: TokenCounter | None = None,
    haystack: str | Haystack | None = None,
    qa_files: dict[str, str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> EvalReport:
    """Generate, answer (cached in ``out_dir/predictions.jsonl``), score and write the report."""
    counter = counter_for(model, counter)
    hay = get_haystack(haystack) if isinstance(haystack, str) else haystack
    samples = ruler_samples(task_names, lengths, n_samples, counter, seed, hay, qa_files)
    out = Path(out_dir)
    write_samples(
        samples, out / "samples" / f"ruler-{_slug(counter.name)}-{_set_id(samples)}.jsonl"
    )
    preds = run_samples(samples, model, PredictionCache(out / "predictions.jsonl"), force, progress)
    report = build_report("ruler", model.name, counter.name, seed, preds)
    write_report(report, out, f"ruler-{_slug(model.name)}")
    return report


def niah_samples(
    lengths: Sequence[int],
    depths: Sequence[float],
    n_samples: int,
    counter: TokenCounter,
    seed: int = 42,
    haystack: Haystack | None = None,
    needles: Sequence[str] | None = None,
    question: str | None = None,
    answers: Sequence[str] | None = None,
) -> list[Sample]:
    """The depth × length grid (``n_samples`` per cell, differing by haystack seed)."""
    if not depths:
        raise InputError("give at least one depth")
    return [
        grid_niah(
            n,
            float(d),
            i,
            seed + i,
            counter,
            haystack,
            list(needles) if needles else None,
            question,
            list(answers) if answers else None,
        )
        for n in _check_lengths(lengths)
        for d in depths
        for i in range(n_samples)
    ]


def run_niah(
    model: Adapter,
    lengths: Sequence[int] = (1024, 2048, 4096),
    depths: Sequence[float] = DEFAULT_DEPTHS,
    n_samples: int = 1,
    out_dir: str | Path = "eval-out",
    seed: int = 42,
    counter: TokenCounter | None = None,
    haystack: str | Haystack | None = "essay",
    needles: Sequence[str] | None = None,
    question: str | None = None,
    answers: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> EvalReport:
    """gkamradt-style grid; writes ``niah-<model>.{json,md,png}`` (the PNG is the heatmap)."""
    if needles and not answers:
        raise InputError("custom needles need answers (the strings a correct reply contains)")
    counter = counter_for(model, counter)
    hay = get_haystack(haystack) if isinstance(haystack, str) else haystack
    samples = niah_samples(
        lengths, depths, n_samples, counter, seed, hay, needles, question, answers
    )
    out = Path(out_dir)
    write_samples(samples, out / "samples" / f"niah-{_slug(counter.name)}-{_set_id(samples)}.jsonl")
    preds = run_samples(samples, model, PredictionCache(out / "predictions.jsonl"), force, progress)
    report = build_report("niah", model.name, counter.name, seed, preds)
    write_report(report, out, f"niah-{_slug(model.name)}")
    return report
