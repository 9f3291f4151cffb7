"""Runs samples through a model with a JSONL prediction cache keyed by (sample id, model).

Every finished prediction is appended and fsynced at once, so a killed run loses at most
the samples in flight; rerunning skips what is cached (``force=True`` redoes it). A torn
last line (a kill mid-write) is ignored on reading.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from engram_sdk.evals.judge import Judge
from engram_sdk.evals.protocol import Adapter, Answer, EvalError, as_adapter
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.scoring import SAMPLE_METRICS, postprocess
from pydantic import BaseModel, Field, ValidationError

from engram_sdk.errors import InputError

PREDICTION_FORMAT_VERSION = 1


class Prediction(BaseModel):
    """One cached model answer and its per-sample score (in [0, 1]).

    ``length`` is the cell's target length (the sample's ``target_length``).
    """

    format_version: int = PREDICTION_FORMAT_VERSION
    sample_id: str
    model: str
    task: str
    length: int
    index: int
    depth: float | None = None
    prediction: str
    outputs: list[str]
    metric: str
    score: float
    info: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0


class PredictionCache:
    """Append-only JSONL of :class:`Prediction`; the last record of a key wins."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.records: dict[tuple[str, str], Prediction] = {}
        self.skipped_lines = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open("r", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    p = Prediction.model_validate_json(line)
                except (ValidationError, ValueError):
                    self.skipped_lines += 1  # torn line from a kill, or foreign content
                    continue
                if p.format_version != PREDICTION_FORMAT_VERSION:
                    raise InputError(
                        f"{self.path}: prediction format {p.format_version}, expected {PREDICTION_FORMAT_VERSION}"
                    )
                self.records[(p.sample_id, p.model)] = p

    def get(self, sample_id: str, model: str) -> Prediction | None:
        return self.records.get((sample_id, model))

    def add(self, p: Prediction) -> None:
        line = p.model_dump_json() + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")  # close a torn line so this record parses
                f.write(line.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            self.records[(p.sample_id, p.model)] = p


def score_prediction(sample: Sample, text: str) -> float:
    """The sample's metric on one cleaned-up prediction, in [0, 1]."""
    return SAMPLE_METRICS[sample.metric](postprocess(text), sample.outputs)


def _progress(enabled: bool, total: int, label: str) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    bar.start()
    bar.add_task(label, total=total)
    return bar


def run_samples(
    samples: Sequence[Sample],
    model: Adapter,
    cache: PredictionCache | str | Path,
    *,
    force: bool = False,
    progress: bool = True,
    judge: Judge | None = None,
) -> list[Prediction]:
    """Answer every sample (cached ones are reused unless ``force``); returns predictions in
    sample order. Samples a model failed on raise :class:`EvalError` after the others finish.

    With a ``judge`` each answer's score is the judge's grade / 10 (the string-match score
    stays in ``info["match_score"]``)."""
    if not isinstance(cache, PredictionCache):
        cache = PredictionCache(cache)
    model = as_adapter(model)
    limit = model.max_context
    todo = [s for s in samples if force or cache.get(s.id, model.name) is None]
    if limit:
        too_long = [s for s in todo if s.tokens > limit]
        if too_long:
            raise InputError(
                f"{len(too_long)} samples need more tokens than {model.name}'s context of {limit} "
                f"(e.g. {too_long[0].task} at {too_long[0].tokens}): use --lengths up to "
                f"{limit}, or run the longer ones through the memory pipeline "
                f"(--memory-budget N with N well under {limit}, or `engram eval compare`)"
            )
    bar = _progress(progress and bool(todo), len(todo), f"{model.name}")
    errors: list[str] = []

    def one(s: Sample) -> None:
        t0 = time.perf_counter()
        out = model.answer(s)
        ans = out if isinstance(out, Answer) else Answer(str(out))
        score = score_prediction(s, ans.text)
        info = dict(ans.info)
        if judge is not None:
            info["match_score"] = score
            score, graded = judge.grade(s, ans.text)
            info.update(graded)
        cache.add(
            Prediction(
                sample_id=s.id,
                model=model.name,
                task=s.task,
                length=s.target_length,
                index=s.index,
                depth=s.meta.get("depth"),
                prediction=ans.text,
                outputs=s.outputs,
                metric=s.metric,
                score=score,
                info=info,
                seconds=time.perf_counter() - t0,
            )
        )

    try:
        workers = max(1, int(model.concurrency))
        if workers == 1:
            for s in todo:
                try:
                    one(s)
                except EvalError as exc:
                    errors.append(f"{s.task}#{s.index}: {exc}")
                if bar:
                    bar.advance(0)
        else:
            with ThreadPoolExecutor(workers) as pool:
                futures = {pool.submit(one, s): s for s in todo}
                for fut in as_completed(futures):
                    s = futures[fut]
                    try:
                        fut.result()
                    except EvalError as exc:
                        errors.append(f"{s.task}#{s.index}: {exc}")
                    if bar:
                        bar.advance(0)
    finally:
        if bar:
            bar.stop()
    if errors:
        raise EvalError(f"{len(errors)} of {len(todo)} samples failed; first: {errors[0]}")
    # identical samples (one id) may stand for several grid cells: each keeps its own place
    return [
        cache.records[(s.id, model.name)].model_copy(
            update={
                "task": s.task,
                "length": s.target_length,
                "index": s.index,
                "depth": s.meta.get("depth"),
            }
        )
        for s in samples
    ]


def write_samples(samples: Iterable[Sample], path: str | Path) -> None:
    """Save samples as JSONL (RULER-like fields plus ours)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(s.model_dump_json() + "\n")


def read_samples(path: str | Path) -> list[Sample]:
    """Samples saved by :func:`write_samples`."""
    out = []
    for i, line in enumerate(Path(path).read_text("utf-8").splitlines()):
        try:
            out.append(Sample.model_validate(json.loads(line)))
        except (ValidationError, ValueError) as exc:
            raise InputError(f"{path}:{i + 1} is not a sample: {exc}") from exc
    return out
