"""The headline comparison: the model alone vs the model through engram memory.

For every task and length the same samples are answered twice: by the model reading the
whole prompt (only where it fits the model's window; the rest is reported as
``n/a — exceeds window``, never dropped) and by the memory pipeline (the haystack ingested
into a :class:`~engram_sdk.memory.Memory`, the question answered from a context recalled
under a token budget inside the window). Each cell reports the end-to-end score of both and
the retrieval recall of the memory path.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from engram_sdk.evals.api import check_window, counter_for, niah_samples, ruler_samples
from engram_sdk.evals.config import DEFAULT_DEPTHS, MIN_LENGTH
from engram_sdk.evals.focus import ContextMode
from engram_sdk.evals.memory_adapter import MemoryAdapter
from engram_sdk.evals.models import ModelOptions, load_model
from engram_sdk.evals.process_pool import ProcessPoolAdapter
from engram_sdk.evals.protocol import Adapter, as_adapter
from engram_sdk.evals.runner import Prediction, PredictionCache, run_samples
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.scoring import get_metric, postprocess
from pydantic import BaseModel, Field, field_validator, model_validator

from engram_sdk.errors import InputError

COMPARE_FORMAT_VERSION = 1
NOT_IN_WINDOW = "n/a — exceeds window"
NOT_RUN = "not run"
Decoding = Literal["free", "extractive"]
DEFAULT_LENGTHS = (4096, 8192, 32768, 131072, 1048576)


class CompareConfig(BaseModel):
    """One ``engram eval compare`` run."""

    format_version: int = COMPARE_FORMAT_VERSION
    model: str = Field(description="model spec (see engram eval --help)")
    model_options: ModelOptions = Field(default_factory=ModelOptions)
    tasks: list[str] = Field(default_factory=lambda: ["ruler"])
    grid: bool = Field(default=True, description="also run the NIAH depth × length grid")
    alone: bool = Field(default=True, description="also answer with the model alone")
    lengths: list[int] = Field(default_factory=lambda: list(DEFAULT_LENGTHS))
    depths: list[float] = Field(default_factory=lambda: list(DEFAULT_DEPTHS))
    n_samples: int = Field(default=3, ge=1)
    memory_budget: int | None = Field(
        default=None, description="tokens of recalled context (default: a quarter of the window)"
    )
    memory_uri: str = "dram://"
    memory_context: ContextMode = Field(
        default="focus",
        description="how recalled passages reach the reader: passages | ranked | focus",
    )
    decoding: Decoding = Field(
        default="free",
        description="free: the reader writes what it likes; extractive: only spans of its "
        "context (engram_sdk.evals.extractive; local models only)",
    )
    answer_processes: int = Field(
        default=1,
        ge=1,
        description="worker processes answering through memory, each with its own reader "
        "(dram:// memory only)",
    )
    window: int | None = Field(default=None, description="the model's window if it has none")
    seed: int = 42
    workers: int = Field(default=0, ge=0)
    out_dir: Path = Path("eval-compare")
    force: bool = False
    progress: bool = True

    @model_validator(mode="after")
    def _private_memories(self) -> CompareConfig:
        if self.answer_processes > 1 and not self.memory_uri.startswith("dram://"):
            raise ValueError(
                "answer_processes > 1 needs memory_uri dram:// (each process its own memory)"
            )
        return self

    @field_validator("lengths")
    @classmethod
    def _long_enough(cls, v: list[int]) -> list[int]:
        if not v or min(v) < MIN_LENGTH:
            raise ValueError(f"lengths must be >= {MIN_LENGTH} tokens, got {v}")
        return sorted(set(v))


class CompareCell(BaseModel):
    """One task (or NIAH depth) at one length, both ways."""

    kind: Literal["ruler", "niah"]
    task: str
    length: int
    depth: float | None = None
    n: int
    alone: float | None  # None: the prompt does not fit the window
    alone_status: str = "ok"
    memory: float
    recall: float
    nulls_alone: int = 0
    nulls_memory: int = 0
    context_tokens: float = 0.0  # mean tokens the memory path handed the reader


class CompareReport(BaseModel):
    """A saved comparison."""

    format_version: int = COMPARE_FORMAT_VERSION
    model: str
    window: int | None
    memory_budget: int
    memory_context: ContextMode = "passages"
    decoding: Decoding = "free"
    counter: str
    seed: int
    n_samples: int
    created: str = Field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    lengths: list[int]
    tasks: list[str]
    depths: list[float]
    cells: list[CompareCell]

    def cell(self, task: str, length: int, depth: float | None = None) -> CompareCell | None:
        for c in self.cells:
            if c.task == task and c.length == length and c.depth == depth:
                return c
        return None


def _score(preds: Sequence[Prediction]) -> tuple[float, int]:
    cleaned = [postprocess(p.prediction) for p in preds]
    score = get_metric(preds[0].metric)(cleaned, [p.outputs for p in preds])
    return score, sum(not c for c in cleaned)


def _cells(
    kind: Literal["ruler", "niah"],
    samples: Sequence[Sample],
    alone: dict[str, Prediction],
    memory: dict[str, Prediction],
    missing: str = NOT_IN_WINDOW,
) -> list[CompareCell]:
    groups: dict[tuple[str, int, float | None], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.task, s.target_length, s.meta.get("depth") if kind == "niah" else None)].append(s)
    cells = []
    for (task, length, depth), ss in groups.items():
        mem = [memory[s.id] for s in ss]
        mem_score, mem_nulls = _score(mem)
        fits = all(s.id in alone for s in ss)
        alone_score, alone_nulls = _score([alone[s.id] for s in ss]) if fits else (None, 0)
        cells.append(
            CompareCell(
                kind=kind,
                task=task,
                length=length,
                depth=depth,
                n=len(ss),
                alone=alone_score,
                alone_status="ok" if fits else missing,
                memory=mem_score,
                recall=round(100 * sum(p.info.get("recall", 0.0) for p in mem) / len(mem), 2),
                nulls_alone=alone_nulls,
                nulls_memory=mem_nulls,
                context_tokens=sum(p.info.get("context_tokens", 0) for p in mem) / len(mem),
            )
        )
    return cells


def extractive(model: Adapter) -> Adapter:
    """``model`` decoding extractively, or an error when it is not a local model."""
    from engram_sdk.evals.adapters import BackendAdapter
    from engram_sdk.evals.extractive import ExtractiveAdapter

    if not isinstance(model, BackendAdapter):
        raise InputError(
            f"--decoding extractive needs a local model (GGUF or Hugging Face); "
            f"{model.name!r} is a {type(model).__name__}"
        )
    return ExtractiveAdapter(model)


def memory_reader(config: CompareConfig, budget: int) -> MemoryAdapter:
    """The memory path of ``config`` with its own reader (built in each worker process)."""
    model = load_model(config.model, config.model_options)
    if config.decoding == "extractive":
        model = extractive(model)
    return MemoryAdapter(model, budget, config.memory_uri, context=config.memory_context)


def _answer(
    samples: Sequence[Sample], model: Adapter, cache: PredictionCache, config: CompareConfig
) -> dict[str, Prediction]:
    preds = run_samples(samples, model, cache, force=config.force, progress=config.progress)
    return {s.id: p for s, p in zip(samples, preds, strict=True)}


def run_compare(config: CompareConfig, *, model: Adapter | None = None) -> CompareReport:
    """Generate every sample once, answer it alone (where it fits) and through memory, and
    write ``compare.json`` plus the report folder (``index.html``, tables, heatmaps, plots)."""
    from engram_sdk.evals.compare_report import write_compare

    model = as_adapter(model or load_model(config.model, config.model_options))
    check_window(model)
    if config.decoding == "extractive":
        model = extractive(model)
    window = config.window or model.max_context
    budget = config.memory_budget or max(256, (window or 8192) // 4)
    counter = counter_for(model)
    common = {"seed": config.seed, "workers": config.workers}
    ruler = (
        ruler_samples(config.tasks, config.lengths, config.n_samples, counter, **common)
        if config.tasks
        else []
    )
    grid = (
        niah_samples(config.lengths, config.depths, config.n_samples, counter, **common)
        if config.grid
        else []
    )
    everything = ruler + grid
    cache = PredictionCache(Path(config.out_dir) / "predictions.jsonl")
    fitting = [s for s in everything if window is None or s.tokens <= window]
    fitting = fitting if config.alone else []
    missing = NOT_IN_WINDOW if config.alone else NOT_RUN
    alone = _answer(fitting, model, cache, config) if fitting else {}
    reader = MemoryAdapter(model, budget, config.memory_uri, context=config.memory_context)
    if config.answer_processes > 1:
        factory = functools.partial(memory_reader, config, budget)
        with ProcessPoolAdapter(factory, config.answer_processes, like=reader) as pooled:
            memory = _answer(everything, pooled, cache, config)
    else:
        memory = _answer(everything, reader, cache, config)
    report = CompareReport(
        model=model.name,
        window=window,
        memory_budget=budget,
        memory_context=config.memory_context,
        decoding=config.decoding,
        counter=counter.name,
        seed=config.seed,
        n_samples=config.n_samples,
        lengths=config.lengths,
        tasks=list(dict.fromkeys(s.task for s in ruler)),
        depths=[float(d) for d in config.depths] if grid else [],
        cells=_cells("ruler", ruler, alone, memory, missing)
        + _cells("niah", grid, alone, memory, missing),
    )
    write_compare(report, config)
    return report
