"""``engram quickstart``: the main job on embedded defaults, a tour of the SDK offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)

SAMPLE_TEXT = (
    "Only Alexander the Great could tame the horse Bucephalus. "
    "Engram looks up the embedding of the last few tokens in O(1): the address depends "
    "only on the token ids, so it is known before the forward pass starts.\n"
)


def addressing_demo(text: str, show: int = 12) -> None:
    """Tokenize, canonicalize and address ``text``; print a table and the table geometry."""
    from engram_sdk.hashing import NgramConfig, NgramHasher
    from engram_sdk.tokenizer import get_tokenizer

    tok = get_tokenizer()
    ids = tok.encode_array(text)
    canon = tok.canonicalize(ids)
    cfg = NgramConfig(vocab_size=tok.canonical.size, layer_ids=[1, 15],
                      pad_id=int(tok.canonical.table[tok.eot_id]))
    hasher = NgramHasher(cfg)
    addr = hasher.hash(canon[None], 1, flat=True)[0]
    table = Table(title=f"{len(ids)} tokens · cl100k_base → canonical → Engram layer 1 addresses")
    for col in ("#", "token", "id", "canonical", "2-gram head 0", "3-gram head 0"):
        table.add_column(col, justify="left" if col == "token" else "right")
    for i in range(min(show, len(ids))):
        table.add_row(str(i), repr(tok.decode([int(ids[i])])), str(ids[i]), str(canon[i]),
                      str(addr[i, 0]), str(addr[i, cfg.n_head_per_ngram]))
    console.print(table)
    rows = hasher.table_rows(1)
    console.print(
        f"canonical vocabulary {tok.canonical.size:,} of {tok.n_vocab:,} "
        f"({tok.canonical.reduction:.1%} smaller); layer 1 table: {rows:,} rows in "
        f"{cfg.heads_total} heads; {len(np.unique(addr)):,} distinct rows touched by this text"
    )


def memory_demo() -> None:
    """Ingest the SDK's own source into a throw-away memory, search it, build a context."""
    import engram_sdk
    from engram_sdk.memory import Memory

    root = Path(engram_sdk.__file__).parent
    with Memory.open("dram://") as mem:
        report = mem.ingest(root, progress=False)
        console.print(f"ingested {report.files_indexed} files of {root} "
                      f"({report.passages} passages, {report.mb_per_s:.1f} MB/s)")
        table = Table(title='search "class NgramHasher"')
        for col in ("score", "source:line", "snippet"):
            table.add_column(col)
        for hit in mem.search("class NgramHasher", k=4):
            table.add_row(f"{hit.score:.1f}", f"{Path(hit.source).relative_to(root)}:{hit.line_start}",
                          hit.snippet[:70])
        console.print(table)
        ctx = mem.context("how are canonical ids cached on disk", max_tokens=200)
        console.print(f"context for 'how are canonical ids cached on disk': {ctx.tokens} tokens "
                      f"from {', '.join(Path(h.source).name for h in ctx.passages)}")
        first = mem.session("first-chat", scope="demo-user")
        first.append("user", "My favourite colour is ultramarine blue.")
        second = mem.session("second-chat", scope="demo-user")
        recalled = second.recall("what is my favourite colour?")
        console.print(f"a new session recalls: {recalled[0].snippet if recalled else '(nothing)'}")


def quickstart(
    file: Annotated[Path | None, typer.Argument(help="text to address (default: built-in sample)")] = None,
) -> None:
    """Run the SDK end to end on embedded defaults (offline, CPU, about a minute)."""
    text = file.read_text(errors="replace") if file else SAMPLE_TEXT
    console.rule("[bold]1. tokenizer and Engram addressing")
    addressing_demo(text)
    console.rule("[bold]2. episodic memory: ingest, search, context, sessions")
    memory_demo()


def register(app: typer.Typer) -> None:
    """Add ``engram quickstart``."""
    app.command()(quickstart)
