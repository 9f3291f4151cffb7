"""``engram version`` and ``engram tokenize``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engram_sdk._version import __version__
from engram_sdk.errors import InputError

console = Console(highlight=False)


def version() -> None:
    """Print the engram-sdk version."""
    console.print(f"engram-sdk {__version__}")


def read_text_file(path: Path) -> str:
    """A file's text; undecodable bytes become U+FFFD. Clear errors for non-files."""
    if str(path) == "-":
        import sys

        return sys.stdin.read()
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    return path.read_bytes().decode("utf-8", errors="replace")


def tokenize(
    file: Annotated[Path, typer.Argument(help="text file to tokenize ('-' for stdin)")],
    count: Annotated[bool, typer.Option("--count", help="print only the token count")] = False,
    canonical: Annotated[bool, typer.Option("--canonical", help="show canonical ids too")] = False,
    encoding: Annotated[str, typer.Option(help="tiktoken encoding")] = "cl100k_base",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int, typer.Option(help="tokens shown in the table (0: all)")] = 200,
) -> None:
    """Tokenize FILE: ids, texts and (with --canonical) canonical ids.

    Example: engram tokenize README.md --canonical --limit 20
    """
    from engram_sdk.tokenizer import get_tokenizer

    tok = get_tokenizer(encoding)
    text = read_text_file(file)
    ids = tok.encode(text)
    if count:
        console.print(len(ids))
        return
    canon = tok.canonicalize(ids).tolist() if canonical else None
    if as_json:
        out: dict = {"encoding": tok.name, "count": len(ids), "ids": ids}
        if canon is not None:
            cmap = tok.canonical
            out |= {"canonical_ids": canon, "canonical_vocab": cmap.size, "vocab": tok.n_vocab}
        typer.echo(json.dumps(out))
        return
    table = Table(title=escape(f"{file} · {len(ids)} tokens · {tok.name}"))
    table.add_column("#", justify="right")
    table.add_column("id", justify="right")
    table.add_column("text")
    if canon is not None:
        table.add_column("canonical", justify="right")
    shown = ids if limit == 0 else ids[:limit]
    for i, tid in enumerate(shown):
        text = repr(tok.decode_bytes([tid]).decode("utf-8", "replace"))
        row: list[str | Text] = [str(i), str(tid), Text(text)]  # token text is never markup
        if canon is not None:
            row.append(str(canon[i]))
        table.add_row(*row)
    console.print(table)
    if len(shown) < len(ids):
        console.print(f"… {len(ids) - len(shown)} more (use --limit 0 for all)")
    if canon is not None:
        cmap = tok.canonical
        console.print(
            f"canonical vocabulary: {cmap.size} of {tok.n_vocab} ids "
            f"({cmap.reduction:.1%} reduction); {len(set(canon))} distinct canonical ids "
            f"vs {len(set(ids))} distinct ids in this file"
        )


def register(app: typer.Typer) -> None:
    """Add ``version`` and ``tokenize``."""
    app.command()(version)
    app.command()(tokenize)
