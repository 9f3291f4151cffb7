"""Entry points: :func:`run` (one :class:`RunConfig`), :func:`run_ruler` and :func:`run_niah`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from engram_sdk.evals import tasks as registry
from engram_sdk.evals.config import DEFAULT_DEPTHS, MIN_LENGTH, RunConfig, build_config
from engram_sdk.evals.flatten import remove_newline_tab
from engram_sdk.evals.haystacks import Haystack, get_haystack
from engram_sdk.evals.judge import Judge
from engram_sdk.evals.length import ReservingCounter, TiktokenCounter, TokenCounter
from engram_sdk.evals.memo_counter import MemoCounter
from engram_sdk.evals.pool import Job, generate_all
from engram_sdk.evals.protocol import Adapter, as_adapter
from engram_sdk.evals.report import EvalReport, build_report, write_report
from engram_sdk.evals.runner import PredictionCache, run_samples, write_samples
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import InputError

__all__ = ["DEFAULT_DEPTHS", "counter_for", "niah_samples", "ruler_samples", "run"]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "model"


def _set_id(samples: Sequence[Sample]) -> str:
    """A short name for a set of samples (a hash of their ids), so runs never overwrite each other."""
    return hashlib.sha256("".join(s.id for s in samples).encode()).hexdigest()[:12]


def _check_lengths(lengths: Sequence[int]) -> list[int]:
    out = sorted({int(n) for n in lengths})
    if not out or out[0] < MIN_LENGTH:
        raise InputError(f"lengths must be >= {MIN_LENGTH} tokens, got {list(lengths)}")
    return out


def check_window(model: Adapter) -> None:
    """Refuse a model whose context cannot hold the shortest sample, saying what to do."""
    window = as_adapter(model).max_context
    if window is not None and window < MIN_LENGTH:
        raise InputError(
            f"{model.name} has a context of {window} tokens; every eval sample needs at least "
            f"{MIN_LENGTH} (prompt + answer). Use a model with a longer context, or if the "
            "model's context is set by a flag (--max-context), raise it to 256 or more"
        )


def counter_for(model: Adapter, counter: TokenCounter | None = None) -> TokenCounter:
    """How to count lengths for ``model``: ``counter``, else its own tokenizer, else cl100k_base,
    remembering counts across samples (:class:`MemoCounter`); plus the tokens its chat
    template adds (``template_tokens``)."""
    model = as_adapter(model)
    base = counter or model.token_counter or TiktokenCounter()
    if not isinstance(base, MemoCounter):
        base = MemoCounter(base)
    reserve = int(model.template_tokens or 0)
    return ReservingCounter(base, reserve) if reserve else base


def _finish(samples: list[Sample], counter: TokenCounter, flatten: bool) -> list[Sample]:
    return [remove_newline_tab(s, counter) for s in samples] if flatten else samples


def ruler_samples(
    task_names: Sequence[str] | str,
    lengths: Sequence[int],
    n_samples: int,
    counter: TokenCounter,
    *,
    seed: int = 42,
    haystack: Haystack | None = None,
    qa_files: dict[str, str] | None = None,
    flatten: bool = False,
    workers: int = 1,
) -> list[Sample]:
    """Every sample of a RULER run, task by task and length by length (``workers`` processes;
    ``flatten``: RULER's ``--remove_newline_tab``)."""
    if n_samples < 1:
        raise InputError(f"samples must be >= 1, got {n_samples}")
    names = registry.resolve_tasks(task_names, qa_files)
    jobs = [
        Job(t, n, i, seed, haystack=haystack, qa_files=qa_files)
        for t in names
        for n in _check_lengths(lengths)
        for i in range(n_samples)
    ]
    return _finish(generate_all(jobs, counter, workers), counter, flatten)


def niah_samples(
    lengths: Sequence[int],
    depths: Sequence[float],
    n_samples: int,
    counter: TokenCounter,
    *,
    seed: int = 42,
    haystack: Haystack | None = None,
    needles: Sequence[str] | None = None,
    question: str | None = None,
    answers: Sequence[str] | None = None,
    flatten: bool = False,
    workers: int = 1,
) -> list[Sample]:
    """The depth × length grid: ``n_samples`` per cell, each over its own haystack
    (haystack seed ``seed + i``), so repeats are distinct measurements."""
    if not depths:
        raise InputError("give at least one depth")
    hay = haystack or get_haystack("essay")
    if n_samples > 1 and not hay.varies_with_seed:
        raise InputError(
            f"the {hay.name} haystack is the same text at every seed, so {n_samples} samples "
            "per cell would repeat one measurement: use --haystack essay or a folder, or -n 1"
        )
    grid = {
        "needles": list(needles) if needles else None,
        "question": question,
        "answers": list(answers) if answers else None,
    }
    jobs = [
        Job("niah", n, i, seed + i, depth=float(d), haystack=hay, grid=grid)
        for n in _check_lengths(lengths)
        for d in depths
        for i in range(n_samples)
    ]
    return _finish(generate_all(jobs, counter, workers), counter, flatten)


def _samples_for(config: RunConfig, counter: TokenCounter) -> list[Sample]:
    hay = get_haystack(config.haystack) if config.haystack else None
    common = {"seed": config.seed, "flatten": config.remove_newline_tab, "workers": config.workers}
    if config.kind == "ruler":
        return ruler_samples(
            config.tasks,
            config.lengths,
            config.n_samples,
            counter,
            haystack=hay,
            qa_files=config.qa_files or None,
            **common,
        )
    if config.needles and not config.answers:
        raise InputError("custom needles need answers (the strings a correct reply contains)")
    return niah_samples(
        config.lengths,
        config.depths,
        config.n_samples,
        counter,
        haystack=hay,
        needles=config.needles or None,
        question=config.question,
        answers=config.answers or None,
        **common,
    )


def run(
    config: RunConfig,
    *,
    model: Adapter | None = None,
    counter: TokenCounter | None = None,
    judge: Adapter | None = None,
) -> EvalReport:
    """Generate, answer (cached in ``out_dir/predictions.jsonl``), score and write the report.

    ``model`` (and ``judge``) default to loading ``config.model`` (``config.judge``).
    """
    from engram_sdk.evals.models import load_model

    model = model or load_model(config.model, config.model_options)
    check_window(model)
    if judge is None and config.judge:
        judge = load_model(
            config.judge, config.model_options.model_copy(update={"memory_budget": None})
        )
    if counter is None and config.tokenizer != "model":
        from engram_sdk.evals.length import get_counter

        counter = get_counter(config.tokenizer)
    counter = counter_for(model, counter)
    samples = _samples_for(config, counter)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"run-config-{config.kind}.json").write_text(config.model_dump_json(indent=2), "utf-8")
    write_samples(
        samples, out / "samples" / f"{config.kind}-{_slug(counter.name)}-{_set_id(samples)}.jsonl"
    )
    preds = run_samples(
        samples,
        model,
        PredictionCache(out / "predictions.jsonl"),
        force=config.force,
        progress=config.progress,
        judge=Judge(judge) if judge is not None else None,
    )
    report = build_report(config.kind, model.name, counter.name, config.seed, preds)
    write_report(report, out, f"{config.kind}-{_slug(model.name)}")
    return report


def run_ruler(
    model: Adapter,
    *,
    tasks: Sequence[str] | str = "ruler",
    lengths: Sequence[int] = (4096,),
    n_samples: int = 10,
    out_dir: str | Path = "eval-out",
    seed: int = 42,
    counter: TokenCounter | None = None,
    haystack: str | None = None,
    qa_files: dict[str, str] | None = None,
    remove_newline_tab: bool = False,
    workers: int = 0,
    force: bool = False,
    progress: bool = True,
) -> EvalReport:
    """RULER tasks × lengths for ``model``; writes ``ruler-<model>.{json,md,png}``."""
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    config = build_config(
        kind="ruler",
        model=model.name,
        tasks=names,
        lengths=list(lengths),
        n_samples=n_samples,
        seed=seed,
        haystack=haystack,
        qa_files=qa_files or {},
        remove_newline_tab=remove_newline_tab,
        workers=workers,
        out_dir=Path(out_dir),
        force=force,
        progress=progress,
    )
    return run(config, model=model, counter=counter)


def run_niah(
    model: Adapter,
    *,
    lengths: Sequence[int] = (1024, 2048, 4096),
    depths: Sequence[float] = DEFAULT_DEPTHS,
    n_samples: int = 1,
    out_dir: str | Path = "eval-out",
    seed: int = 42,
    counter: TokenCounter | None = None,
    haystack: str = "essay",
    needles: Sequence[str] | None = None,
    question: str | None = None,
    answers: Sequence[str] | None = None,
    judge: Adapter | None = None,
    remove_newline_tab: bool = False,
    workers: int = 0,
    force: bool = False,
    progress: bool = True,
) -> EvalReport:
    """gkamradt-style grid; writes ``niah-<model>.{json,md,png}`` (the PNG is the heatmap).

    ``judge``: a model that grades each answer 1-10 against the needle (gkamradt's criteria);
    without it a cell is scored with ``string_match_all`` over ``answers``.
    """
    config = build_config(
        kind="niah",
        model=model.name,
        lengths=list(lengths),
        depths=[float(d) for d in depths],
        n_samples=n_samples,
        seed=seed,
        haystack=haystack,
        needles=list(needles or []),
        question=question,
        answers=list(answers or []),
        remove_newline_tab=remove_newline_tab,
        workers=workers,
        out_dir=Path(out_dir),
        force=force,
        progress=progress,
    )
    return run(config, model=model, counter=counter, judge=judge)
