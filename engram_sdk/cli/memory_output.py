"""How memory commands print: user text verbatim, never read as rich markup.

On a terminal, hits are a table built from :class:`rich.text.Text` cells (markup is never
parsed, so ``self.data[key]``, ``proj[v2]`` or a stored ``[/b]`` print as they are). When
stdout is not a terminal, hits are ``path:line:text`` lines as ripgrep prints them, never
cut to the terminal width. ``--json`` prints :class:`SearchOutput`, a versioned schema.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from engram_sdk.memory.models import Hit

if TYPE_CHECKING:
    from rich.console import Console

SEARCH_OUTPUT_FORMAT_VERSION = 1


class SearchOutput(BaseModel):
    """``engram search --json``: one JSON object per call.

    ``format_version`` changes only when a field is removed or changes meaning; new fields
    may be added. ``hits`` are best first; each has ``source``, ``line_start``/``line_end``
    (1-based), ``score``, ``snippet`` (the matching line), ``passage_id``, ``phrase_match``
    (the whole query occurs in the passage), ``scope`` and, where stored, ``metadata``.
    """

    format_version: int = SEARCH_OUTPUT_FORMAT_VERSION
    query: str
    scope: str
    k: int | None
    hits: list[Hit]


def print_hits(hits: Sequence[Hit], *, tty: bool | None = None, to: Console | None = None) -> None:
    """A table on a terminal (``to``, default stdout), ``path:line:text`` lines otherwise."""
    tty = sys.stdout.isatty() if tty is None else tty
    if not tty:
        out = sys.stdout
        for h in hits:
            out.write(f"{h.source}:{h.line_start}:{h.snippet}\n")
        out.flush()
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    to = to or Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
    if not hits:
        to.print("no hits")
        return
    table = Table()
    for name in ("score", "source:line", "snippet"):
        table.add_column(name, overflow="fold")
    for h in hits:
        table.add_row(Text(f"{h.score:.1f}"), Text(f"{h.source}:{h.line_start}"), Text(h.snippet))
    to.print(table)


def print_line(text: str, *, stderr: bool = False) -> None:
    """One line of user-facing text, printed verbatim (no markup, tabs kept)."""
    stream = sys.stderr if stderr else sys.stdout
    stream.write(text + "\n")
    stream.flush()
