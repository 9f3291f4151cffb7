"""``engram search`` without the CLI framework: the common calls, parsed by hand.

A search from a script or a pipe is the CLI's hot path, and most of its time used to go to
importing typer, click and rich (about as long as ripgrep takes to scan 100 MB). This module
parses the options of :func:`engram_sdk.cli.memory_cmd.search` with nothing but the standard
library, runs the search and prints ``path:line:text`` lines (or ``--json``). Whatever it
does not handle (help, a terminal's table, an unknown or malformed option) it hands back to
the full command, which gives the same results and the usual usage errors.

Before searching in process it asks the memory's warm searcher, if one runs
(:mod:`engram_sdk.cli.search_client`); after an in-process search it starts one. Everything
imported before that point is standard library.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # (not typing's, nor collections.abc: the client imports neither)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TextIO

    from engram_sdk.memory.memory import Memory


class SearchArgs:
    """The options of ``engram search`` (see :func:`engram_sdk.cli.memory_cmd.search`).

    A plain class (not a dataclass or NamedTuple, whose creation costs a client call more
    than asking the searcher does); :data:`FIELDS` in order, compared by value."""

    FIELDS = (
        "query",
        "k",
        "all_hits",
        "regex",
        "glob",
        "store",
        "scope",
        "exact_case",
        "as_json",
        "files",
        "no_daemon",
        "daemon_op",
    )
    __slots__ = FIELDS

    def __init__(
        self,
        query: str,
        k: int = 10,
        all_hits: bool = False,
        regex: bool = False,
        glob: str | None = None,
        store: str | None = None,
        scope: str = "default",
        exact_case: bool = False,
        as_json: bool = False,
        files: bool = False,
        no_daemon: bool = False,
        daemon_op: str | None = None,
    ) -> None:
        self.query, self.k, self.all_hits, self.regex = query, k, all_hits, regex
        self.glob, self.store, self.scope, self.exact_case = glob, store, scope, exact_case
        self.as_json, self.files, self.no_daemon, self.daemon_op = (
            as_json,
            files,
            no_daemon,
            daemon_op,
        )

    def as_dict(self) -> dict[str, object]:
        """Every option by name (what a client sends to the searcher)."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchArgs) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"SearchArgs({self.as_dict()!r})"


_FLAGS = {
    "--all": "all_hits",
    "--regex": "regex",
    "--exact-case": "exact_case",
    "--json": "as_json",
    "-l": "files",
    "--files-with-matches": "files",
    "--no-daemon": "no_daemon",
}
_DAEMON_OPS = {"--daemon-stop": "stop", "--daemon-status": "status"}
_VALUES = {"-k": "k", "--glob": "glob", "--store": "store", "--scope": "scope"}


def parse(args: Sequence[str]) -> SearchArgs | None:
    """The options of one ``engram search`` call, or None for anything out of the ordinary
    (help, unknown options, a missing value, a second positional): the full command then
    parses it and reports errors the usual way."""
    values: dict[str, object] = {}
    positional: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positional += rest
            break
        name, eq, inline = arg.partition("=")
        if arg in _FLAGS:
            values[_FLAGS[arg]] = True
        elif arg in _DAEMON_OPS:
            values["daemon_op"] = _DAEMON_OPS[arg]
        elif name in _VALUES and (eq or rest):
            values[_VALUES[name]] = inline if eq else rest.pop(0)
        elif arg.startswith("-k") and len(arg) > 2 and not eq:
            values["k"] = arg[2:]
        elif arg.startswith("-") and arg != "-":
            return None
        else:
            positional.append(arg)
    if values.get("daemon_op") is not None and not positional:
        positional.append("")
    if len(positional) != 1:
        return None
    k = values.pop("k", "10")
    if not (isinstance(k, str) and k.lstrip("-").isdigit()):
        return None
    return SearchArgs(query=positional[0], k=int(k), **values)  # type: ignore[arg-type]


def run(args: SearchArgs, out: TextIO, mem: Memory | None = None) -> None:
    """Search and write hits as ``path:line:text`` lines, or one JSON object, to ``out``;
    in ``mem`` if given (a searcher's open memory), else in the memory ``args.store`` names."""
    if mem is None:
        from engram_sdk.memory.memory import Memory

        with Memory.open(args.store, "r") as opened:
            hits = _search(args, opened)
    else:
        hits = _search(args, mem)
    if args.as_json:
        from engram_sdk.cli.memory_output import SearchOutput

        k_out = None if args.all_hits else args.k
        doc = SearchOutput(query=args.query, scope=args.scope, k=k_out, hits=hits)
        out.write(doc.model_dump_json() + "\n")
    elif args.files:
        out.write("".join(f"{h.source}\n" for h in hits))
    else:
        out.write("".join(f"{h.source}:{h.line_start}:{h.snippet}\n" for h in hits))
    out.flush()


def _search(args: SearchArgs, mem: Memory) -> list:
    filters: dict[str, object] = {}
    if args.regex:
        filters["regex"] = True
    if args.glob is not None:
        filters["path_glob"] = args.glob
    k: int | str = "all" if args.all_hits else args.k
    return mem.search(
        args.query,
        k=k,  # type: ignore[arg-type]
        scope=args.scope,
        exact_case=args.exact_case,
        one_per_source=args.files,
        **filters,  # type: ignore[arg-type]
    )


def fast_search(args: Sequence[str]) -> int | None:
    """Run ``engram search ARGS`` here if it is a plain call whose output is not a terminal
    (exit code), else None: the caller runs the full command instead. ``--daemon-stop`` and
    ``--daemon-status`` are answered here on a terminal too."""
    parsed = parse(args)
    if parsed is not None and parsed.daemon_op is not None:
        from engram_sdk.cli import search_client

        return search_client.control(search_client.memory_folder(parsed.store), parsed.daemon_op)
    if parsed is None or os.environ.get("ENGRAM_FULL_CLI") or sys.stdout.isatty():
        return None
    return search_warm_or_here(parsed)


def search_warm_or_here(parsed: SearchArgs) -> int:
    """Ask the memory's searcher, starting one if none runs; search in process if none
    answers (or searchers are off)."""
    from engram_sdk.cli import search_client

    folder = None
    if not search_client.daemon_disabled(parsed.no_daemon):
        folder = search_client.memory_folder(parsed.store)
    if folder is not None:
        reply = search_client.search_via_searcher(folder, parsed.as_dict())
        if not isinstance(reply, search_client.Reply) and reply.start:
            # start one (or find one starting) and ask it: it opens the memory once, where
            # searching here as well would do that work twice
            spawned = search_client.start_searcher(folder)
            if search_client.wait_for_socket(folder, spawned):
                reply = search_client.search_via_searcher(folder, parsed.as_dict())
        if isinstance(reply, search_client.Reply):
            sys.stdout.write(reply.stdout)
            sys.stdout.flush()
            sys.stderr.write(reply.stderr)
            return reply.code
    from engram_sdk.cli.errors import run_guarded

    return run_guarded(lambda: run(parsed, sys.stdout))
