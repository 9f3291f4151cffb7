"""``engram ingest|search|context|sessions``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store", help="memory store URI (default: $ENGRAM_MEMORY_URI or the user data folder)"
    ),
]
ScopeOpt = Annotated[str, typer.Option("--scope", help="scope (user, agent, session or any label)")]


def _open(store: str | None, mode: str = "a"):
    from engram_sdk.memory import Memory

    return Memory.open(store, mode)


def ingest(
    path: Annotated[Path, typer.Argument(help="file or folder to ingest")],
    store: StoreOpt = None,
    scope: ScopeOpt = "default",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ingest a file or a codebase (incremental; honours .gitignore and .engramignore)."""
    with _open(store) as mem:
        report = mem.ingest(path, scope=scope, progress=progress)
    if as_json:
        typer.echo(report.model_dump_json())
        return
    console.print(
        f"{report.files_indexed} files indexed, {report.files_unchanged} unchanged, "
        f"{report.files_removed} removed, {report.passages} passages, "
        f"{report.bytes_indexed / 1e6:.1f} MB in {report.seconds:.1f} s ({report.mb_per_s:.1f} MB/s)"
    )
    skipped = [
        ("binary", report.skipped_binary),
        ("too large", report.skipped_too_large),
        ("special files", report.skipped_special),
        ("links out of the root", report.skipped_outside_links),
    ]
    for what, items in skipped:
        if items:
            console.print(
                f"skipped {len(items)} {what}: {', '.join(items[:5])}{' …' if len(items) > 5 else ''}"
            )
    if report.ignored:
        console.print(f"ignored {report.ignored} paths (.gitignore/.engramignore)")


def search(
    query: Annotated[str, typer.Argument(help="identifier or phrase")],
    k: Annotated[int, typer.Option("-k", help="number of hits")] = 10,
    store: StoreOpt = None,
    scope: ScopeOpt = "default",
    exact_case: Annotated[bool, typer.Option("--exact-case")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Where a phrase or identifier occurs: source, line, score, snippet."""
    with _open(store, "r") as mem:
        hits = mem.search(query, k=k, scope=scope, exact_case=exact_case)
    if as_json:
        typer.echo(json.dumps([h.model_dump() for h in hits]))
        return
    table = Table("score", "source:line", "snippet")
    for h in hits:
        table.add_row(f"{h.score:.1f}", f"{h.source}:{h.line_start}", h.snippet)
    console.print(table if hits else "no hits")


def context(
    query: Annotated[str, typer.Argument(help="question or topic")],
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="token budget")] = 2000,
    store: StoreOpt = None,
    scope: ScopeOpt = "default",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The best passages with their sources, assembled under a token budget."""
    with _open(store, "r") as mem:
        ctx = mem.context(query, max_tokens=max_tokens, scope=scope)
    typer.echo(ctx.model_dump_json() if as_json else ctx.text)


sessions_app = typer.Typer(
    help="List, show, delete, export and import sessions.", no_args_is_help=True
)


@sessions_app.command("ls")
def sessions_ls(
    store: StoreOpt = None, scope: Annotated[str | None, typer.Option("--scope")] = None
) -> None:
    """List sessions."""
    from engram_sdk.sessions import list_sessions

    with _open(store, "r") as mem:
        for info in list_sessions(mem, scope):
            console.print(f"{info.scope}\t{info.id}\t{info.turns} turns")


@sessions_app.command("show")
def sessions_show(session: str, store: StoreOpt = None, scope: ScopeOpt = "default") -> None:
    """Print a session's turns."""
    with _open(store, "r") as mem:
        for t in mem.session(session, scope).turns():
            console.print(f"[bold]{t.role}[/]: {t.content}")


@sessions_app.command("rm")
def sessions_rm(session: str, store: StoreOpt = None, scope: ScopeOpt = "default") -> None:
    """Delete a session and what it remembered."""
    with _open(store) as mem:
        console.print(f"deleted {mem.session(session, scope).delete()} turns")


@sessions_app.command("export")
def sessions_export(
    session: str,
    out: Annotated[Path, typer.Argument(help="JSONL file to write")],
    store: StoreOpt = None,
    scope: ScopeOpt = "default",
) -> None:
    """Export a session as JSONL (with a format version)."""
    with _open(store, "r") as mem:
        console.print(f"wrote {mem.session(session, scope).export(out)} turns to {out}")


@sessions_app.command("import")
def sessions_import(
    path: Annotated[Path, typer.Argument(help="JSONL export")],
    store: StoreOpt = None,
    session: Annotated[str | None, typer.Option("--session")] = None,
    scope: Annotated[str | None, typer.Option("--scope")] = None,
) -> None:
    """Import a JSONL export as a new session."""
    from engram_sdk.sessions import import_session

    with _open(store) as mem:
        s = import_session(mem, path, session, scope)
        console.print(f"imported session {s.id!r} ({len(s.turns())} turns) into scope {s.scope!r}")


def register(app: typer.Typer) -> None:
    """Add the memory commands."""
    for fn in (ingest, search, context):
        app.command()(fn)
    app.add_typer(sessions_app, name="sessions")
