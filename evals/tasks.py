"""The task registry, as RULER's config: the single source of truth for every task.

Three tables, as in NVIDIA/RULER:

* ``TASKS`` — the 13 task instances (``scripts/synthetic.yaml``): name → base task + params;
* ``BASE_TASKS`` — per base task: template, answer prefix, generation budget
  (``scripts/data/synthetic/constants.py``, in :mod:`engram_sdk.evals.templates`);
* ``METRICS_BY_BASE`` — per base task: the metric (``scripts/eval/synthetic/constants.py``).

:func:`config` resolves an instance into a :class:`TaskConfig` and the generator of its base
task is handed that config; it never looks up a template, budget or metric itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engram_sdk.evals import niah, qa, synthetic, templates
from engram_sdk.evals.haystacks import Haystack
from engram_sdk.evals.length import TokenCounter
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.taskconfig import TaskConfig

from engram_sdk.errors import InputError

Generator = Callable[..., Sample]

BASE_TASKS: dict[str, dict[str, Any]] = {**templates.RULER, "niah_grid": templates.NIAH_GRID}
METRICS_BY_BASE: dict[str, str] = {
    "niah": "string_match_all",
    "variable_tracking": "string_match_all",
    "common_words_extraction": "string_match_all",
    "freq_words_extraction": "string_match_all",
    "qa": "string_match_part",
    "niah_grid": "string_match_all",
}
GENERATORS: dict[str, Generator] = {
    "niah": niah.ruler_niah,
    "variable_tracking": synthetic.variable_tracking,
    "common_words_extraction": synthetic.common_words_extraction,
    "freq_words_extraction": synthetic.freq_words_extraction,
    "qa": qa.qa,
    "niah_grid": niah.grid_niah,
}


@dataclass(frozen=True)
class TaskSpec:
    """One registered task instance: a base task and its parameters."""

    name: str
    base: str
    params: dict[str, Any]
    group: str = "ruler"
    description: str = ""
    extras: tuple[str, ...] = field(default=())  # optional keyword inputs its generator takes

    @property
    def metric(self) -> str:
        return METRICS_BY_BASE[self.base]

    @property
    def tokens_to_generate(self) -> int:
        return int(BASE_TASKS[self.base]["tokens_to_generate"])

    def config(self) -> TaskConfig:
        """This instance resolved against the base-task tables."""
        base = BASE_TASKS[self.base]
        return TaskConfig(
            name=self.name,
            base=self.base,
            params=dict(self.params),
            template=base["template"],
            answer_prefix=base["answer_prefix"],
            tokens_to_generate=int(base["tokens_to_generate"]),
            metric=METRICS_BY_BASE[self.base],
            extras=self.extras,
        )


def _niah(hay: str, k: str, v: str, nk: int = 1, nv: int = 1, nq: int = 1) -> dict[str, Any]:
    return {
        "type_haystack": hay,
        "type_needle_k": k,
        "type_needle_v": v,
        "num_needle_k": nk,
        "num_needle_v": nv,
        "num_needle_q": nq,
    }


_QA_FILES = ("qa_files",)
TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec("niah_single_1", "niah", _niah("noise", "words", "numbers"), extras=("haystack",)),
        TaskSpec("niah_single_2", "niah", _niah("essay", "words", "numbers"), extras=("haystack",)),
        TaskSpec("niah_single_3", "niah", _niah("essay", "words", "uuids"), extras=("haystack",)),
        TaskSpec(
            "niah_multikey_1",
            "niah",
            _niah("essay", "words", "numbers", nk=4),
            extras=("haystack",),
        ),
        TaskSpec(
            "niah_multikey_2", "niah", _niah("needle", "words", "numbers"), extras=("haystack",)
        ),
        TaskSpec(
            "niah_multikey_3", "niah", _niah("needle", "uuids", "uuids"), extras=("haystack",)
        ),
        TaskSpec(
            "niah_multivalue",
            "niah",
            _niah("essay", "words", "numbers", nv=4),
            extras=("haystack",),
        ),
        TaskSpec(
            "niah_multiquery",
            "niah",
            _niah("essay", "words", "numbers", nq=4),
            extras=("haystack",),
        ),
        TaskSpec(
            "vt", "variable_tracking", {"type_haystack": "noise", "num_chains": 1, "num_hops": 4}
        ),
        TaskSpec(
            "cwe",
            "common_words_extraction",
            {"freq_cw": 30, "freq_ucw": 3, "num_cw": 10, "num_fewshot": 1},
        ),
        TaskSpec(
            "fwe",
            "freq_words_extraction",
            {"alpha": 2.0, "coded_wordlen": 6, "vocab_size": -1},
        ),
        TaskSpec(
            "qa_1",
            "qa",
            {"dataset": "squad"},
            extras=_QA_FILES,
            description="needs a SQuAD v2 dev file (--squad)",
        ),
        TaskSpec(
            "qa_2",
            "qa",
            {"dataset": "hotpotqa"},
            extras=_QA_FILES,
            description="needs a HotpotQA dev file (--hotpotqa)",
        ),
        TaskSpec(
            "qa_synthetic",
            "qa",
            {"dataset": "synthetic"},
            group="extra",
            extras=_QA_FILES,
            description="generated biographies; a stand-in, not RULER's qa_1/qa_2",
        ),
    ]
}
GRID_TASK = TaskSpec("niah", "niah_grid", {}, group="grid", extras=("haystack",))
RULER_TASKS = [n for n, t in TASKS.items() if t.group == "ruler"]


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``; :class:`InputError` lists the known ones otherwise."""
    if name == GRID_TASK.name:
        return GRID_TASK
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def resolve_tasks(names: Sequence[str] | str, qa_files: dict[str, str] | None = None) -> list[str]:
    """Expand ``all``/``ruler`` (qa_1/qa_2 only when their files are given, else qa_synthetic)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    files = qa_files or {}
    out: list[str] = []
    for n in names:
        if n not in ("all", "ruler"):
            get_task(n)
            out.append(n)
            continue
        for t in RULER_TASKS:
            dataset = TASKS[t].params.get("dataset")
            out.append("qa_synthetic" if dataset and dataset not in files else t)
    return list(dict.fromkeys(out))


def generate_one(
    task: str,
    length: int,
    index: int,
    counter: TokenCounter,
    seed: int = 42,
    haystack: Haystack | None = None,
    qa_files: dict[str, str] | None = None,
) -> Sample:
    """Sample ``index`` of ``task`` at ``length`` tokens (prompt + tokens to generate).

    ``haystack`` replaces the haystack of the tasks that take one (e.g. a folder of files).
    """
    spec = get_task(task)
    if spec.group == "grid":
        raise InputError("the NIAH grid is generated by niah_samples(lengths=..., depths=...)")
    cfg = spec.config()
    if length <= cfg.tokens_to_generate:
        raise InputError(f"length {length} leaves no room for a prompt in {task}")
    kwargs: dict[str, Any] = {}
    if "qa_files" in cfg.extras:
        kwargs["qa_files"] = qa_files
    if haystack is not None and "haystack" in cfg.extras:
        kwargs["haystack"] = haystack
    return GENERATORS[cfg.base](cfg, length, index, seed, counter, **kwargs)


def generate(
    task: str,
    length: int,
    n_samples: int,
    counter: TokenCounter,
    seed: int = 42,
    haystack: Haystack | None = None,
    qa_files: dict[str, str] | None = None,
) -> list[Sample]:
    """``n_samples`` samples of ``task`` at ``length`` tokens (see :func:`generate_one`)."""
    return [
        generate_one(task, length, i, counter, seed, haystack, qa_files) for i in range(n_samples)
    ]
