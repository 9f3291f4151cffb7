"""`engram eval niah|ruler|compare|tasks`: long-context evals for any model.

Each command turns its options into one :class:`~engram_sdk.evals.config.RunConfig` (or
:class:`~engram_sdk.evals.compare.CompareConfig`) and hands it to the library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from engram_sdk.errors import InputError

console = Console(highlight=False)

MODEL_HELP = (
    "model spec: oracle | empty | smollm2 | openai:<model> | hf:<path or id> | "
    "gguf:<file.gguf> | llm:<backend spec> | llamacpp:<file.gguf> | "
    "engram:<checkpoint folder> | python:<module>:<function>"
)
Model = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)]
Out = Annotated[
    Path, typer.Option(help="output folder: predictions cache, samples, reports (JSON/MD/PNG)")
]
Seed = Annotated[int, typer.Option(help="seed of every generated sample (same seed, same bytes)")]
Tokenizer = Annotated[
    str,
    typer.Option(
        help="count lengths with: 'model' (its own tokenizer, else cl100k_base), "
        "a tiktoken encoding, or hf:<path>"
    ),
]
Force = Annotated[bool, typer.Option("--force", help="redo predictions already in the cache")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")]
Flatten = Annotated[
    bool,
    typer.Option(
        "--remove-newline-tab",
        help="RULER's --remove_newline_tab: collapse every newline/tab/space run to one space",
    ),
]
Workers = Annotated[int, typer.Option(help="processes generating samples (0: all cores)")]
BaseUrl = Annotated[str, typer.Option(help="OpenAI-compatible base URL (openai: models)")]
ApiMode = Annotated[str, typer.Option(help="openai: models: chat | completions")]
ApiKeyEnv = Annotated[str, typer.Option(help="environment variable holding the API key")]
Concurrency = Annotated[int, typer.Option(help="parallel HTTP requests (openai: models)")]
Timeout = Annotated[float, typer.Option(help="seconds per HTTP request")]
Retries = Annotated[int, typer.Option(help="retries on 429/5xx with exponential backoff")]
MaxContext = Annotated[
    int | None, typer.Option(help="the model's context in tokens (longer samples are refused)")
]
MemoryBudget = Annotated[
    int | None,
    typer.Option(help="answer through the memory pipeline from a context of this many tokens"),
]
Device = Annotated[str, typer.Option(help="torch device for hf/gguf/engram models")]


def parse_ints(text: str, what: str) -> list[int]:
    """``"4k,128k,1m"`` → ``[4096, 131072, 1048576]``; errors name ``what``."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1024 if part.endswith("k") else (1024 * 1024 if part.endswith("m") else 1)
        try:
            out.append(int(float(part.rstrip("km")) * mult))
        except ValueError:
            raise InputError(f"{what}: {part!r} is not a number (e.g. 4096 or 4k)") from None
    if not out:
        raise InputError(f"{what}: give at least one value")
    return out


def parse_depths(text: str, intervals: int | None, spacing: str) -> list[float]:
    """Depths from ``--depths`` or, with ``--depth-intervals``, gkamradt's spacing."""
    from engram_sdk.evals.spacing import spaced_depths

    if intervals:
        return spaced_depths(intervals, spacing=spacing)
    try:
        return [float(d) for d in text.split(",") if d.strip()]
    except ValueError:
        raise InputError(f"--depths: {text!r} is not a comma list of percentages") from None


def model_options(**fields: object):
    """The pydantic model options the model-loading flags describe."""
    from engram_sdk.evals.models import ModelOptions

    return ModelOptions.model_validate(fields)


def _print_report(report, out: Path) -> None:
    from engram_sdk.evals import markdown

    console.print(escape(markdown(report)))
    console.print(f"reports in {escape(str(out))}")


def _ruler(
    model: Model,
    tasks: Annotated[
        str,
        typer.Option(
            help="comma list of tasks, or 'ruler' for all 13 (qa_synthetic stands in for "
            "qa_1/qa_2 without --squad/--hotpotqa)"
        ),
    ] = "ruler",
    lengths: Annotated[str, typer.Option(help="comma list of lengths in tokens (4k, 1m)")] = "4096",
    samples: Annotated[
        int, typer.Option("--samples", "-n", help="samples per task and length")
    ] = 10,
    out: Out = Path("eval-out"),
    seed: Seed = 42,
    tokenizer: Tokenizer = "model",
    haystack: Annotated[
        str | None, typer.Option(help="replace the NIAH haystacks: noise | essay | a folder")
    ] = None,
    squad: Annotated[Path | None, typer.Option(help="SQuAD v2 dev JSON for qa_1")] = None,
    hotpotqa: Annotated[Path | None, typer.Option(help="HotpotQA dev JSON for qa_2")] = None,
    remove_newline_tab: Flatten = False,
    workers: Workers = 0,
    force: Force = False,
    progress: Progress = True,
    base_url: BaseUrl = "http://localhost:8000/v1",
    api_mode: ApiMode = "chat",
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    concurrency: Concurrency = 4,
    timeout: Timeout = 300.0,
    retries: Retries = 6,
    max_context: MaxContext = None,
    memory_budget: MemoryBudget = None,
    device: Device = "cpu",
) -> None:
    """RULER tasks × lengths: writes ruler-<model>.{json,md,png} into --out."""
    from engram_sdk.evals import run
    from engram_sdk.evals.config import build_config

    files = {k: str(v) for k, v in (("squad", squad), ("hotpotqa", hotpotqa)) if v}
    config = build_config(
        kind="ruler",
        model=model,
        model_options=model_options(
            base_url=base_url,
            api_mode=api_mode,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout_s=timeout,
            retries=retries,
            max_context=max_context,
            memory_budget=memory_budget,
            device=device,
        ),
        tasks=[t.strip() for t in tasks.split(",") if t.strip()],
        lengths=parse_ints(lengths, "--lengths"),
        n_samples=samples,
        seed=seed,
        tokenizer=tokenizer,
        haystack=haystack,
        qa_files=files,
        remove_newline_tab=remove_newline_tab,
        workers=workers,
        out_dir=out,
        force=force,
        progress=progress,
    )
    _print_report(run(config), out)


def _niah(
    model: Model,
    lengths: Annotated[str, typer.Option(help="comma list of context lengths")] = "1k,2k,4k",
    depths: Annotated[
        str, typer.Option(help="comma list of needle depths in percent")
    ] = "0,25,50,75,100",
    depth_intervals: Annotated[
        int | None,
        typer.Option(help="instead of --depths: this many depths from 0 to 100 (gkamradt)"),
    ] = None,
    depth_spacing: Annotated[
        str, typer.Option(help="with --depth-intervals: linear | sigmoid (gkamradt's)")
    ] = "linear",
    samples: Annotated[
        int, typer.Option("--samples", "-n", help="repeat runs per cell, each its own haystack")
    ] = 1,
    needle: Annotated[
        list[str] | None, typer.Option(help="needle sentence (repeat for multi-needle)")
    ] = None,
    question: Annotated[str | None, typer.Option(help="retrieval question")] = None,
    answer: Annotated[
        list[str] | None, typer.Option(help="strings a correct reply contains (repeat)")
    ] = None,
    multi: Annotated[
        bool, typer.Option("--multi", help="gkamradt's three pizza-ingredient needles")
    ] = False,
    judge: Annotated[
        str | None,
        typer.Option(help="grade answers 1-10 with this model (a model spec), as gkamradt does"),
    ] = None,
    haystack: Annotated[str, typer.Option(help="noise | essay | a folder of files")] = "essay",
    out: Out = Path("eval-out"),
    seed: Seed = 42,
    tokenizer: Tokenizer = "model",
    remove_newline_tab: Flatten = False,
    workers: Workers = 0,
    force: Force = False,
    progress: Progress = True,
    base_url: BaseUrl = "http://localhost:8000/v1",
    api_mode: ApiMode = "chat",
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    concurrency: Concurrency = 4,
    timeout: Timeout = 300.0,
    retries: Retries = 6,
    max_context: MaxContext = None,
    memory_budget: MemoryBudget = None,
    device: Device = "cpu",
) -> None:
    """gkamradt-style depth × length grid: writes niah-<model>.{json,md,png} (heatmap)."""
    from engram_sdk.evals import run, templates
    from engram_sdk.evals.config import build_config

    if multi:
        needle = needle or list(templates.NIAH_MULTI_NEEDLES)
        question = question or templates.NIAH_MULTI_QUESTION
        answer = answer or list(templates.NIAH_MULTI_ANSWERS)
    config = build_config(
        kind="niah",
        model=model,
        model_options=model_options(
            base_url=base_url,
            api_mode=api_mode,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout_s=timeout,
            retries=retries,
            max_context=max_context,
            memory_budget=memory_budget,
            device=device,
        ),
        lengths=parse_ints(lengths, "--lengths"),
        depths=parse_depths(depths, depth_intervals, depth_spacing),
        n_samples=samples,
        seed=seed,
        tokenizer=tokenizer,
        haystack=haystack,
        needles=needle or [],
        question=question,
        answers=answer or [],
        judge=judge,
        remove_newline_tab=remove_newline_tab,
        workers=workers,
        out_dir=out,
        force=force,
        progress=progress,
    )
    _print_report(run(config), out)


def _compare(
    model: Model,
    tasks: Annotated[
        str, typer.Option(help="comma list of RULER tasks, 'ruler' for all 13, or 'none'")
    ] = "ruler",
    grid: Annotated[bool, typer.Option("--grid/--no-grid", help="also run the NIAH grid")] = True,
    alone: Annotated[
        bool,
        typer.Option("--alone/--no-alone", help="also answer with the model alone (full prompt)"),
    ] = True,
    lengths: Annotated[
        str, typer.Option(help="comma list of lengths in tokens")
    ] = "4k,8k,32k,128k,1m",
    depths: Annotated[str, typer.Option(help="NIAH grid depths in percent")] = "0,25,50,75,100",
    samples: Annotated[int, typer.Option("--samples", "-n", help="samples per cell")] = 3,
    memory_budget: Annotated[
        int | None,
        typer.Option(help="tokens of recalled context (default: a quarter of the window)"),
    ] = None,
    memory_uri: Annotated[
        str, typer.Option(help="store of the memory the haystacks go into")
    ] = "dram://",
    memory_context: Annotated[
        str,
        typer.Option(
            help="how recalled passages reach the reader: 'focus' (only the lines with the "
            "most query terms), 'ranked' (every line, best matches last) or 'passages' "
            "(as recalled)"
        ),
    ] = "focus",
    decoding: Annotated[
        str,
        typer.Option(
            help="'free' (the reader writes what it likes) or 'extractive' (the reader may "
            "only copy spans of its context: GGUF and Hugging Face models)"
        ),
    ] = "free",
    answer_processes: Annotated[
        int,
        typer.Option(
            help="worker processes answering through memory, each loading its own copy of "
            "the model (use about cores / 4 for llama.cpp models; dram:// memory only)"
        ),
    ] = 1,
    window: Annotated[
        int | None, typer.Option(help="the model's window when it does not say (openai: models)")
    ] = None,
    out: Out = Path("eval-compare"),
    seed: Seed = 42,
    workers: Workers = 0,
    force: Force = False,
    progress: Progress = True,
    base_url: BaseUrl = "http://localhost:8000/v1",
    api_mode: ApiMode = "chat",
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    concurrency: Concurrency = 4,
    timeout: Timeout = 300.0,
    retries: Retries = 6,
    device: Device = "cpu",
) -> None:
    """The model alone vs the model through engram memory, per task and length: writes
    index.html, compare.{json,md}, heatmaps and the RULER line plot into --out."""
    from pydantic import ValidationError

    from engram_sdk.evals.compare import CompareConfig, run_compare
    from engram_sdk.evals.compare_report import markdown

    try:
        config = CompareConfig(
            model=model,
            model_options=model_options(
                base_url=base_url,
                api_mode=api_mode,
                api_key_env=api_key_env,
                concurrency=concurrency,
                timeout_s=timeout,
                retries=retries,
                device=device,
                max_context=window,
            ),
            tasks=[] if tasks == "none" else [t.strip() for t in tasks.split(",") if t.strip()],
            grid=grid,
            alone=alone,
            lengths=parse_ints(lengths, "--lengths"),
            depths=parse_depths(depths, None, "linear"),
            n_samples=samples,
            memory_budget=memory_budget,
            memory_uri=memory_uri,
            memory_context=memory_context,
            decoding=decoding,
            answer_processes=answer_processes,
            window=window,
            seed=seed,
            workers=workers,
            out_dir=out,
            force=force,
            progress=progress,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "--" + "-".join(str(p) for p in err["loc"]).replace("_", "-")
        raise InputError(f"invalid comparison: {where}: {err['msg']}") from None
    report = run_compare(config)
    console.print(escape(markdown(report)))
    console.print(f"report folder: {escape(str(out / 'index.html'))}")


def _tasks() -> None:
    """List the registered tasks: base task, metric, generation budget, parameters."""
    from engram_sdk.evals import TASKS

    for t in TASKS.values():
        console.print(
            escape(
                f"{t.name}  base={t.base} metric={t.metric} gen={t.tokens_to_generate} "
                f"{t.params} {t.description}"
            )
        )


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command group to the root app."""
    ev = typer.Typer(
        help="Long-context evals: NIAH grids and RULER tasks, offline and resumable.\n\n"
        "Example: engram eval ruler --model smollm2 --lengths 4k,8k",
        no_args_is_help=True,
    )
    app.add_typer(ev, name="eval")
    ev.command("ruler")(_ruler)
    ev.command("niah")(_niah)
    ev.command("compare")(_compare)
    ev.command("tasks")(_tasks)
