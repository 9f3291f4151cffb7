"""``engram chat``: a conversation with a language model, memory in the prompt, turns stored."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from engram_sdk.sessions import Session

console = Console(highlight=False, soft_wrap=True, stderr=True)


def chat(
    session: Annotated[str, typer.Option("--session", help="session id (created or resumed)")],
    llm: Annotated[
        str | None,
        typer.Option(
            "--llm",
            help="'default' (offline SmolLM2-135M-Instruct), a .gguf file, a Hugging Face "
            "folder, an engram checkpoint or an http(s):// OpenAI-compatible base URL",
        ),
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="memory store URI (default: the user store)")
    ] = None,
    scope: Annotated[str, typer.Option("--scope", help="scope recalled from and stored in")] = (
        "default"
    ),
    max_tokens: Annotated[int, typer.Option(help="tokens per reply")] = 256,
    temperature: Annotated[float, typer.Option(help="0 is greedy")] = 0.0,
    memory_tokens: Annotated[
        int | None, typer.Option(help="token budget of recalled passages (default: window/4)")
    ] = None,
    use_memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="recall passages")
    ] = True,
    show_passages: Annotated[
        bool, typer.Option("--show-passages/--hide-passages", help="print what was recalled")
    ] = True,
) -> None:
    """Talk in a session: replies stream as they are generated; Ctrl-D ends."""
    from engram_sdk.llm import SamplingOptions, augmented_turn, load_backend
    from engram_sdk.memory import Memory

    t0 = time.perf_counter()
    backend = load_backend(llm)
    options = SamplingOptions(max_tokens=max_tokens, temperature=temperature)
    with Memory.open(store) as mem:
        s = Session(mem, session, scope=scope)
        console.print(
            f"{escape(backend.name)} ({backend.context_length}-token window) loaded in "
            f"{time.perf_counter() - t0:.1f} s; session {escape(session)!r} in scope "
            f"{escape(scope)!r}: {len(s.turns())} earlier turns. Ctrl-D ends."
        )
        for line in sys.stdin:
            message = line.rstrip("\n")
            if not message.strip():
                continue
            turn = augmented_turn(
                backend,
                memory=mem,
                session=s,
                messages=[{"role": "user", "content": message}],
                options=options,
                memory_tokens=memory_tokens,
                use_memory=use_memory,
            )
            if show_passages and turn.citations:
                labels = ", ".join(c.label for c in turn.citations)
                console.print(f"[dim]recalled: {escape(labels)}[/]")
            for chunk in turn:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
            sys.stdout.write("\n")
            sys.stdout.flush()
            if turn.plan.history_dropped:
                console.print(
                    f"[dim]{turn.plan.history_dropped} oldest turns left out of the window "
                    "(still in memory)[/]"
                )
    backend.close()


def register(app: typer.Typer) -> None:
    """Add ``engram chat``."""
    app.command()(chat)
