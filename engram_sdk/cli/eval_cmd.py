"""`engram eval niah …` and `engram eval ruler …`: long-context evals for any model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from engram_sdk.errors import InputError

console = Console(highlight=False)


def _ints(text: str, what: str) -> list[int]:
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


def _options(
    base_url: str,
    api_mode: str,
    api_key_env: str,
    concurrency: int,
    timeout: float,
    retries: int,
    max_context: int | None,
    memory_budget: int | None,
    device: str,
):
    from engram_sdk.evals.models import ModelOptions

    return ModelOptions(
        base_url=base_url,
        api_mode=api_mode,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout_s=timeout,
        retries=retries,
        max_context=max_context,
        memory_budget=memory_budget,
        device=device,
    )


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command group to the root app."""
    from engram_sdk.evals.models import MODEL_SPEC_HELP

    ev = typer.Typer(
        help="Long-context evals: NIAH grids and RULER tasks, offline and resumable.",
        no_args_is_help=True,
    )
    app.add_typer(ev, name="eval")

    model_opt = typer.Option(..., "--model", "-m", help=MODEL_SPEC_HELP)
    common = {
        "base_url": typer.Option("http://localhost:8000/v1", help="OpenAI-compatible base URL"),
        "api_mode": typer.Option("chat", help="chat | completions"),
        "api_key_env": typer.Option(
            "OPENAI_API_KEY", help="environment variable holding the API key"
        ),
        "concurrency": typer.Option(4, help="parallel HTTP requests"),
        "timeout": typer.Option(300.0, help="seconds per HTTP request"),
        "retries": typer.Option(6, help="retries on 429/5xx with exponential backoff"),
        "max_context": typer.Option(
            None, help="model context limit in tokens (refuse longer samples)"
        ),
        "memory_budget": typer.Option(
            None, help="run through the memory pipeline with this context budget"
        ),
        "device": typer.Option("cpu", help="torch device for hf/gguf/engram models"),
    }

    @ev.command("ruler")
    def ruler(
        model: str = model_opt,
        tasks: str = typer.Option(
            "ruler",
            help="comma list of tasks, or 'ruler' for all (qa_synthetic stands in for qa_1/qa_2 without --squad/--hotpotqa)",
        ),
        lengths: str = typer.Option(
            "4096", help="comma list of lengths in tokens (4k, 128k allowed)"
        ),
        samples: int = typer.Option(10, "--samples", "-n", help="samples per task and length"),
        out: Path = typer.Option(
            Path("eval-out"), help="output folder (predictions cache, reports)"
        ),
        seed: int = typer.Option(42),
        tokenizer: str = typer.Option(
            "model",
            help="'model' (its own if it has one, else cl100k_base), a tiktoken encoding, or hf:<path>",
        ),
        haystack: str = typer.Option(
            None, help="replace the NIAH haystacks: noise | essay | a folder of files"
        ),
        squad: Path = typer.Option(None, help="SQuAD v2 dev JSON for qa_1"),
        hotpotqa: Path = typer.Option(None, help="HotpotQA dev JSON for qa_2"),
        force: bool = typer.Option(False, "--force", help="redo cached predictions"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        base_url: str = common["base_url"],
        api_mode: str = common["api_mode"],
        api_key_env: str = common["api_key_env"],
        concurrency: int = common["concurrency"],
        timeout: float = common["timeout"],
        retries: int = common["retries"],
        max_context: int = common["max_context"],
        memory_budget: int = common["memory_budget"],
        device: str = common["device"],
    ) -> None:
        """RULER tasks × lengths: writes ruler-<model>.{json,md,png} into --out."""
        from engram_sdk.evals import get_counter, markdown, run_ruler
        from engram_sdk.evals.models import load_model

        files = {k: str(v) for k, v in (("squad", squad), ("hotpotqa", hotpotqa)) if v}
        m = load_model(
            model,
            _options(
                base_url,
                api_mode,
                api_key_env,
                concurrency,
                timeout,
                retries,
                max_context,
                memory_budget,
                device,
            ),
        )
        counter = None if tokenizer == "model" else get_counter(tokenizer)
        report = run_ruler(
            m,
            tasks,
            _ints(lengths, "--lengths"),
            samples,
            out,
            seed,
            counter,
            haystack,
            files,
            force,
            progress,
        )
        console.print(markdown(report))
        console.print(f"reports in {out}")

    @ev.command("niah")
    def niah(
        model: str = model_opt,
        lengths: str = typer.Option("1k,2k,4k", help="comma list of context lengths"),
        depths: str = typer.Option("0,25,50,75,100", help="comma list of needle depths in percent"),
        samples: int = typer.Option(1, "--samples", "-n", help="samples per cell"),
        needle: list[str] = typer.Option(None, help="needle sentence (repeat for multi-needle)"),
        question: str = typer.Option(None, help="retrieval question"),
        answer: list[str] = typer.Option(None, help="strings a correct reply contains (repeat)"),
        multi: bool = typer.Option(
            False, "--multi", help="gkamradt's three pizza-ingredient needles"
        ),
        haystack: str = typer.Option("essay", help="noise | essay | a folder of files"),
        out: Path = typer.Option(Path("eval-out")),
        seed: int = typer.Option(42),
        tokenizer: str = typer.Option("model"),
        force: bool = typer.Option(False, "--force"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        base_url: str = common["base_url"],
        api_mode: str = common["api_mode"],
        api_key_env: str = common["api_key_env"],
        concurrency: int = common["concurrency"],
        timeout: float = common["timeout"],
        retries: int = common["retries"],
        max_context: int = common["max_context"],
        memory_budget: int = common["memory_budget"],
        device: str = common["device"],
    ) -> None:
        """gkamradt-style depth × length grid: writes niah-<model>.{json,md,png} (heatmap)."""
        from engram_sdk.evals import get_counter, markdown, run_niah, templates
        from engram_sdk.evals.models import load_model

        if multi:
            needle = needle or list(templates.NIAH_MULTI_NEEDLES)
            question = question or templates.NIAH_MULTI_QUESTION
            answer = answer or list(templates.NIAH_MULTI_ANSWERS)
        m = load_model(
            model,
            _options(
                base_url,
                api_mode,
                api_key_env,
                concurrency,
                timeout,
                retries,
                max_context,
                memory_budget,
                device,
            ),
        )
        counter = None if tokenizer == "model" else get_counter(tokenizer)
        dl = [float(d) for d in depths.split(",") if d.strip()]
        report = run_niah(
            m,
            _ints(lengths, "--lengths"),
            dl,
            samples,
            out,
            seed,
            counter,
            haystack,
            needle or None,
            question,
            answer or None,
            force,
            progress,
        )
        console.print(markdown(report))
        console.print(f"reports in {out}")

    @ev.command("tasks")
    def list_tasks() -> None:
        """List the registered tasks with their metric and parameters."""
        from engram_sdk.evals import TASKS

        for t in TASKS.values():
            console.print(
                f"[bold]{t.name}[/] {t.metric} gen={t.tokens_to_generate} {t.params} {t.description}"
            )
