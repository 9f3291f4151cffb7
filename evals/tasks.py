"""The task registry, as data: name → generator, parameters, metric, generation budget.

Parameters are RULER's (scripts/synthetic.yaml). Adding a task is adding an entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engram_sdk.evals import niah, qa, synthetic
from engram_sdk.evals.haystacks import Haystack
from engram_sdk.evals.length import TokenCounter
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import InputError

Generator = Callable[..., Sample]


@dataclass(frozen=True)
class TaskSpec:
    """One registered task."""

    name: str
    generator: Generator
    params: dict[str, Any]
    metric: str
    tokens_to_generate: int
    group: str = "ruler"
    description: str = ""
    extras: tuple[str, ...] = field(default=())  # names of optional keyword inputs it takes


def _niah(hay: str, k: str, v: str, nk: int = 1, nv: int = 1, nq: int = 1) -> dict[str, Any]:
    return {
        "type_haystack": hay,
        "type_needle_k": k,
        "type_needle_v": v,
        "num_needle_k": nk,
        "num_needle_v": nv,
        "num_needle_q": nq,
    }


_N, _SM = niah.ruler_niah, "string_match_all"
TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec("niah_single_1", _N, _niah("noise", "words", "numbers"), _SM, 128),
        TaskSpec("niah_single_2", _N, _niah("essay", "words", "numbers"), _SM, 128),
        TaskSpec("niah_single_3", _N, _niah("essay", "words", "uuids"), _SM, 128),
        TaskSpec("niah_multikey_1", _N, _niah("essay", "words", "numbers", nk=4), _SM, 128),
        TaskSpec("niah_multikey_2", _N, _niah("needle", "words", "numbers"), _SM, 128),
        TaskSpec("niah_multikey_3", _N, _niah("needle", "uuids", "uuids"), _SM, 128),
        TaskSpec("niah_multivalue", _N, _niah("essay", "words", "numbers", nv=4), _SM, 128),
        TaskSpec("niah_multiquery", _N, _niah("essay", "words", "numbers", nq=4), _SM, 128),
        TaskSpec(
            "vt",
            synthetic.variable_tracking,
            {"type_haystack": "noise", "num_chains": 1, "num_hops": 4},
            _SM,
            30,
        ),
        TaskSpec(
            "cwe",
            synthetic.common_words_extraction,
            {"freq_cw": 30, "freq_ucw": 3, "num_cw": 10, "num_fewshot": 1},
            _SM,
            120,
        ),
        TaskSpec(
            "fwe",
            synthetic.freq_words_extraction,
            {"alpha": 2.0, "coded_wordlen": 6, "vocab_size": -1},
            _SM,
            50,
        ),
        TaskSpec(
            "qa_1",
            qa.qa,
            {"dataset": "squad"},
            "string_match_part",
            32,
            extras=("qa_files",),
            description="needs a SQuAD v2 dev file (--squad)",
        ),
        TaskSpec(
            "qa_2",
            qa.qa,
            {"dataset": "hotpotqa"},
            "string_match_part",
            32,
            extras=("qa_files",),
            description="needs a HotpotQA dev file (--hotpotqa)",
        ),
        TaskSpec(
            "qa_synthetic",
            qa.qa,
            {"dataset": "synthetic"},
            "string_match_part",
            32,
            group="extra",
            description="generated biographies; a stand-in, not RULER's qa_1/qa_2",
        ),
    ]
}
RULER_TASKS = [n for n, t in TASKS.items() if t.group == "ruler"]
NIAH_HAYSTACK_TASKS = {n for n, t in TASKS.items() if t.generator is _N}


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``; :class:`InputError` lists the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def resolve_tasks(names: Sequence[str] | str, qa_files: dict[str, str] | None = None) -> list[str]:
    """Expand ``all``/``ruler`` (qa_1/qa_2 only when their files are given, else qa_synthetic)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[str] = []
    for n in names:
        if n in ("all", "ruler"):
            files = qa_files or {}
            for t in RULER_TASKS:
                if (t == "qa_1" and "squad" not in files) or (
                    t == "qa_2" and "hotpotqa" not in files
                ):
                    if "qa_synthetic" not in out:
                        out.append("qa_synthetic")
                    continue
                out.append(t)
        else:
            get_task(n)
            out.append(n)
    return list(dict.fromkeys(out))


def generate(
    task: str,
    length: int,
    n_samples: int,
    counter: TokenCounter,
    seed: int = 42,
    haystack: Haystack | None = None,
    qa_files: dict[str, str] | None = None,
) -> list[Sample]:
    """``n_samples`` samples of ``task`` at ``length`` tokens (prompt + tokens to generate).

    ``haystack`` replaces the haystack of the NIAH tasks (e.g. a folder of files).
    """
    spec = get_task(task)
    if length <= spec.tokens_to_generate:
        raise InputError(f"length {length} leaves no room for a prompt in {task}")
    kwargs: dict[str, Any] = {}
    if "qa_files" in spec.extras or spec.generator is qa.qa:
        kwargs["qa_files"] = qa_files
    if haystack is not None and task in NIAH_HAYSTACK_TASKS:
        kwargs["haystack"] = haystack
    return [
        spec.generator(task, spec.params, length, i, seed, counter, **kwargs)
        for i in range(n_samples)
    ]
