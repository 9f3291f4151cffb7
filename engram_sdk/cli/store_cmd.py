"""``engram store info|verify|convert``."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)
store_app = typer.Typer(
    help="Inspect, verify and convert stores (dram://, lmdb://, shards://).\n\n"
    "Example: engram store convert lmdb://./mem shards://./mem-shards",
    no_args_is_help=True,
)


@store_app.command()
def info(
    uri: Annotated[str, typer.Argument(help="store URI")],
    as_json: Annotated[bool, typer.Option("--json", help="print the info as JSON")] = False,
) -> None:
    """Tables, record namespaces and size of a store."""
    from engram_sdk.stores import open_store

    with open_store(uri, "r") as store:
        data = store.info()
    if as_json:
        typer.echo(data.model_dump_json(indent=1))
        return
    console.print(
        f"[bold]{escape(data.uri)}[/] ({data.backend}, format {data.format_version}, "
        f"{_size(data.bytes_on_disk)} on disk; rows {_size(data.table_bytes)}, "
        f"{data.records:,} records of {_size(data.record_bytes)})"
    )
    table = Table("table", "rows", "dim", "dtype", "bytes")
    for t in data.tables:
        table.add_row(escape(t.name), f"{t.rows:,}", str(t.dim), t.dtype, _size(t.nbytes))
    console.print(table)
    for ns, n in data.namespaces.items():
        console.print(f"namespace {escape(ns)}: {n:,} records")


@store_app.command()
def verify(uri: Annotated[str, typer.Argument(help="store URI")]) -> None:
    """Check every checksum; print what is wrong and where. Exit 1 if anything is."""
    from engram_sdk.stores import open_store

    with open_store(uri, "r") as store:
        report = store.verify()
    for p in report.problems:
        where = f" at offset {p.offset}" if p.offset is not None else ""
        console.print(f"[red]BAD[/] {escape(p.file)}{where}: {escape(p.message)}")
    console.print(
        f"checked {report.checked_files} files, {_size(report.checked_bytes)}, "
        f"{report.checked_records:,} records: "
        + ("[green]ok[/]" if report.ok else f"[red]{len(report.problems)} problem(s)[/]")
    )
    if not report.ok:
        # SystemExit, not typer.Exit: the root app runs click with standalone_mode=False,
        # which turns typer.Exit into a return value that could be dropped.
        raise SystemExit(1)


@store_app.command()
def convert(
    src: Annotated[str, typer.Argument(help="source store URI")],
    dst: Annotated[str, typer.Argument(help="destination store URI (created or replaced)")],
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="show a progress bar while copying")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="print what was copied and how long it took as JSON")
    ] = False,
) -> None:
    """Copy any store into any other backend, then verify the copy."""
    from engram_sdk.stores import copy_store, open_store
    from engram_sdk.stores.errors import InputError

    if src == dst:
        raise InputError(f"source and destination are the same store: {src}")
    start = time.perf_counter()
    with open_store(src, "r") as s, open_store(dst, "w") as d:
        copied = copy_store(s, d, progress=progress, verify=True)
    seconds = time.perf_counter() - start
    if as_json:
        fields = {
            "bytes": copied.bytes,
            "table_bytes": copied.table_bytes,
            "records": copied.records,
            "record_bytes": copied.record_bytes,
            "seconds": seconds,
        }
        typer.echo(json.dumps(fields))
    else:
        console.print(
            f"copied and verified {_size(copied.bytes)} (rows {_size(copied.table_bytes)}, "
            f"{copied.records:,} records of {_size(copied.record_bytes)}) in {seconds:.2f} s "
            f"({copied.bytes / max(seconds, 1e-9) / 1e6:.0f} MB/s)"
        )


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def register(app: typer.Typer) -> None:
    """Add the ``store`` group."""
    app.add_typer(store_app, name="store")
