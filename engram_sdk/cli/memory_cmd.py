"""``engram ingest|search|context|sources|forget|sessions``.

User text (snippets, paths, session content) is printed verbatim through
:mod:`engram_sdk.cli.memory_output`, never read as rich markup. This module imports no
torch: memory, sessions, the tokenizer and the stores are numpy-only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from engram_sdk.cli.memory_output import SearchOutput, print_hits, print_line
from engram_sdk.errors import InputError

if TYPE_CHECKING:
    from engram_sdk.memory import Memory

console = Console(highlight=False, soft_wrap=True)
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store", help="memory store URI (default: $ENGRAM_MEMORY_URI or the user data folder)"
    ),
]
ScopeOpt = Annotated[str, typer.Option("--scope", help="scope (user, agent, session or any label)")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="print one JSON object (schema in docs/memory.md)")
]
SessionArg = Annotated[str, typer.Argument(help="session id (as listed by `engram sessions ls`)")]


def _open(store: str | None, mode: str = "a") -> Memory:
    from engram_sdk.memory import Memory

    return Memory.open(store, mode)


def ingest(
    path: Annotated[Path, typer.Argument(help="file or folder to ingest")],
    store: StoreOpt = None,
    scope: ScopeOpt = "default",
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="show a progress bar on stderr")
    ] = True,
    max_file_bytes: Annotated[
        int, typer.Option("--max-file-bytes", help="skip files larger than this (bytes)")
    ] = 4 << 20,
    as_json: JsonOpt = False,
) -> None:
    """Ingest a file or a codebase (incremental; honours .gitignore and .engramignore).

    Example: engram ingest ~/src/project --scope code
    """
    with _open(store) as mem:
        report = mem.ingest(path, scope=scope, progress=progress, max_file_bytes=max_file_bytes)
    for warning in report.warnings:
        print_line(f"warning: {warning}", stderr=True)
    if as_json:
        typer.echo(report.model_dump_json())
        return
    print_line(
        f"{report.files_indexed} files indexed, {report.files_unchanged} unchanged, "
        f"{report.files_removed} removed, {report.passages} passages, "
        f"{report.bytes_indexed / 1e6:.1f} MB in {report.seconds:.1f} s ({report.mb_per_s:.1f} MB/s)"
    )
    skipped = [
        ("binary", report.skipped_binary),
        ("too large", report.skipped_too_large),
        ("special files", report.skipped_special),
        ("links out of the root", report.skipped_outside_links),
        ("unreadable", report.skipped_unreadable),
        ("names not in UTF-8", report.skipped_undecodable_names),
    ]
    for what, items in skipped:
        if items:
            more = " …" if len(items) > 5 else ""
            print_line(f"skipped {len(items)} {what}: {', '.join(items[:5])}{more}")
    for path_name, encoding in report.decoded_as.items():
        print_line(f"read {path_name} as {encoding} (not UTF-8)")
    for path_name, count in report.replaced_bytes.items():
        print_line(f"{path_name}: {count} undecodable bytes replaced by U+FFFD")
    if report.ignored:
        print_line(f"ignored {report.ignored} paths (.gitignore/.engramignore)")


def search(
    query: Annotated[str, typer.Argument(help="identifier, phrase or (with --regex) pattern")],
    k: Annotated[int, typer.Option("-k", help="number of hits")] = 10,
    all_hits: Annotated[bool, typer.Option("--all", help="every match (overrides -k)")] = False,
    regex: Annotated[bool, typer.Option("--regex", help="QUERY is a regular expression")] = False,
    glob: Annotated[
        str | None, typer.Option("--glob", help="only sources matching this path glob")
    ] = None,
    store: StoreOpt = None,
    scope: ScopeOpt = "default",
    exact_case: Annotated[
        bool, typer.Option("--exact-case", help="match case exactly (default: case-folded)")
    ] = False,
    as_json: JsonOpt = False,
    files: Annotated[
        bool,
        typer.Option(
            "-l", "--files-with-matches", help="only the sources with a match, one per line"
        ),
    ] = False,
    no_daemon: Annotated[
        bool,
        typer.Option(
            "--no-daemon", help="piped: neither ask nor start a warm searcher (ENGRAM_NO_DAEMON=1)"
        ),
    ] = False,
    daemon_stop: Annotated[
        bool, typer.Option("--daemon-stop", help="stop this memory's warm searcher")
    ] = False,
    daemon_status: Annotated[
        bool, typer.Option("--daemon-status", help="is a warm searcher running? (exit 1: no)")
    ] = False,
) -> int | None:
    """Where a phrase or identifier occurs.

    On a terminal: a table; piped: path:line:text lines like ripgrep; --json: one object;
    -l: the matching sources (with --all: every one, as rg -l lists them). Piped calls are
    answered by a warm searcher process when one runs for the memory; the first starts one,
    which exits after 15 idle minutes (docs/memory/ingest_cli.md).

    Example: engram search "open_store" -k 20
    """
    if daemon_stop or daemon_status:
        from engram_sdk.cli import search_client

        folder = search_client.memory_folder(store)
        return search_client.control(folder, "stop" if daemon_stop else "status")
    filters: dict[str, object] = {}
    if regex:
        filters["regex"] = True
    if glob is not None:
        filters["path_glob"] = glob
    with _open(store, "r") as mem:
        hits = mem.search(
            query,
            k="all" if all_hits else k,
            scope=scope,
            exact_case=exact_case,
            one_per_source=files,
            **filters,
        )
    if as_json:
        out = SearchOutput(query=query, scope=scope, k=None if all_hits else k, hits=hits)
        typer.echo(out.model_dump_json())
        return None
    if files:
        sys.stdout.write("".join(f"{h.source}\n" for h in hits))
        return None
    print_hits(hits)
    return None


def context(
    query: Annotated[str, typer.Argument(help="question or topic")],
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="token budget")] = 2000,
    store: StoreOpt = None,
    scope: ScopeOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """The best passages with their sources, assembled under a token budget.

    Example: engram context "how are deploys scheduled?" --max-tokens 1500
    """
    with _open(store, "r") as mem:
        ctx = mem.context(query, max_tokens=max_tokens, scope=scope)
    typer.echo(ctx.model_dump_json() if as_json else ctx.text)


def sources(
    store: StoreOpt = None,
    scope: Annotated[
        str | None, typer.Option("--scope", help="only this scope (default: every scope)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List sources: scope, source, passages, bytes (tab-separated), or JSON lines.

    Example: engram sources --scope code
    """
    with _open(store, "r") as mem:
        listed = mem.sources(scope)
    for info in listed:
        if as_json:
            typer.echo(info.model_dump_json())
        else:
            size = "" if info.bytes is None else str(info.bytes)
            print_line(f"{info.scope}\t{info.source}\t{info.passages}\t{size}")


def _metadata_pairs(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--meta expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def forget(
    source: Annotated[
        list[str] | None, typer.Option("--source", help="forget this source (repeatable)")
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="forget passages whose metadata has KEY=VALUE (repeatable)"),
    ] = None,
    older_than: Annotated[
        float | None, typer.Option("--older-than", help="forget passages stored over N seconds ago")
    ] = None,
    expired: Annotated[
        bool, typer.Option("--expired", help="forget passages whose TTL has run out")
    ] = False,
    vacuum: Annotated[
        bool, typer.Option("--vacuum", help="then rewrite the lmdb:// store to give space back")
    ] = False,
    store: StoreOpt = None,
    scope: ScopeOpt = "default",
) -> None:
    """Forget passages by source, metadata, age or TTL (filters combine with AND).

    Example: engram forget --meta session=s1 --older-than 86400 --vacuum
    """
    mem = _open(store)
    try:
        n = mem.forget(
            scope=scope,
            sources=source or None,
            metadata=_metadata_pairs(meta or []),
            older_than=older_than,
            expired=expired,
        )
        print_line(f"forgot {n} passages")
        if vacuum:
            mem.compact(scope)
            report = mem.vacuum()
            print_line(f"store {report.bytes_before:,} → {report.bytes_after:,} bytes")
    finally:
        mem.close()


sessions_app = typer.Typer(
    help="List, show, delete, export and import sessions.\n\n"
    "Example: engram sessions show 2024-06-01 --scope user:42",
    no_args_is_help=True,
)


def _existing(mem: Memory, session: str, scope: str):
    from engram_sdk.sessions import Session

    s = Session(mem, session, scope=scope)
    if not s.exists:
        raise InputError(f"session {session!r} does not exist in scope {scope!r}")
    return s


@sessions_app.command("ls")
def sessions_ls(
    store: StoreOpt = None,
    scope: Annotated[
        str | None, typer.Option("--scope", help="only this scope (default: every scope)")
    ] = None,
) -> None:
    """List sessions: scope, id and number of turns, tab-separated."""
    from engram_sdk.sessions import list_sessions

    with _open(store, "r") as mem:
        for info in list_sessions(mem, scope):
            print_line(f"{info.scope}\t{info.id}\t{info.turns} turns")


@sessions_app.command("show")
def sessions_show(session: SessionArg, store: StoreOpt = None, scope: ScopeOpt = "default") -> None:
    """Print a session's turns (role: content), verbatim."""
    with _open(store, "r") as mem:
        for t in _existing(mem, session, scope).turns():
            print_line(f"{t.role}: {t.content}")


@sessions_app.command("rm")
def sessions_rm(session: SessionArg, store: StoreOpt = None, scope: ScopeOpt = "default") -> None:
    """Delete a session and what it remembered."""
    with _open(store) as mem:
        print_line(f"deleted {_existing(mem, session, scope).delete()} turns")


@sessions_app.command("export")
def sessions_export(
    session: SessionArg,
    out: Annotated[Path, typer.Argument(help="JSONL file to write")],
    store: StoreOpt = None,
    scope: ScopeOpt = "default",
) -> None:
    """Export a session as JSONL (a header with a format version, then one line per turn)."""
    with _open(store, "r") as mem:
        print_line(f"wrote {_existing(mem, session, scope).export(out)} turns to {out}")


@sessions_app.command("import")
def sessions_import(
    path: Annotated[Path, typer.Argument(help="JSONL export")],
    store: StoreOpt = None,
    session: Annotated[
        str | None, typer.Option("--session", help="id of the new session (default: the export's)")
    ] = None,
    scope: Annotated[
        str | None, typer.Option("--scope", help="scope of the new session (default: the export's)")
    ] = None,
) -> None:
    """Import a JSONL export as a new session."""
    from engram_sdk.sessions import import_session

    with _open(store) as mem:
        s = import_session(mem, path, session, scope)
        print_line(f"imported session {s.id!r} ({len(s.turns())} turns) into scope {s.scope!r}")


def register(app: typer.Typer) -> None:
    """Add the memory commands."""
    for fn in (ingest, search, context, sources, forget):
        app.command()(fn)
    app.add_typer(sessions_app, name="sessions")
