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
    cfg = NgramConfig(
        vocab_size=tok.canonical.size,
        layer_ids=[1, 15],
        pad_id=int(tok.canonical.table[tok.eot_id]),
    )
    hasher = NgramHasher(cfg)
    addr = hasher.hash(canon[None], 1, flat=True)[0]
    table = Table(title=f"{len(ids)} tokens · cl100k_base → canonical → Engram layer 1 addresses")
    for col in ("#", "token", "id", "canonical", "2-gram head 0", "3-gram head 0"):
        table.add_column(col, justify="left" if col == "token" else "right")
    for i in range(min(show, len(ids))):
        table.add_row(
            str(i),
            repr(tok.decode([int(ids[i])])),
            str(ids[i]),
            str(canon[i]),
            str(addr[i, 0]),
            str(addr[i, cfg.n_head_per_ngram]),
        )
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
    from engram_sdk.sessions import Session

    root = Path(engram_sdk.__file__).parent
    with Memory.open("dram://") as mem:
        report = mem.ingest(root, progress=False)
        console.print(
            f"ingested {report.files_indexed} files of {root} "
            f"({report.passages} passages, {report.mb_per_s:.1f} MB/s)"
        )
        table = Table(title='search "class NgramHasher"')
        for col in ("score", "source:line", "snippet"):
            table.add_column(col)
        for hit in mem.search("class NgramHasher", k=4):
            table.add_row(
                f"{hit.score:.1f}",
                f"{Path(hit.source).relative_to(root)}:{hit.line_start}",
                hit.snippet[:70],
            )
        console.print(table)
        ctx = mem.context("how are canonical ids cached on disk", max_tokens=200)
        console.print(
            f"context for 'how are canonical ids cached on disk': {ctx.tokens} tokens "
            f"from {', '.join(Path(h.source).name for h in ctx.passages)}"
        )
        first = Session(mem, "first-chat", scope="demo-user")
        first.append("user", "My favourite colour is ultramarine blue.")
        second = Session(mem, "second-chat", scope="demo-user")
        recalled = second.recall("what is my favourite colour?")
        console.print(f"a new session recalls: {recalled[0].snippet if recalled else '(nothing)'}")


def model_demo(workdir: Path) -> None:
    """Train the tiny preset briefly on the SDK's source, save it, reload it, generate."""
    import engram_sdk
    from engram_sdk.corpus import read_token_ids
    from engram_sdk.model import build_model, get_preset, load_checkpoint
    from engram_sdk.model.info import count_parameters
    from engram_sdk.model.train import TokenStream, TrainConfig, train
    from engram_sdk.tokenizer import get_tokenizer

    cfg = get_preset("tiny", max_seq_len=256)
    r = count_parameters(cfg)
    console.print(
        f"tiny preset: {r.total / 1e6:.1f} M parameters, Engram at layers "
        f"{cfg.engram_layer_ids}, MLA + MoE ({cfg.n_routed_experts} experts) + mHC x{cfg.hc_mult}"
    )
    model = build_model(cfg)
    stream = TokenStream(read_token_ids([Path(engram_sdk.__file__).parent / "hashing"]))
    losses = train(
        model,
        stream,
        TrainConfig(steps=20, batch_size=4, seq_len=64, warmup_steps=4),
        out_dir=workdir / "tiny",
        progress=False,
    )
    console.print(f"20 training steps: loss {losses[0]:.2f} → {losses[-1]:.2f}; checkpoint saved")
    again = load_checkpoint(workdir / "tiny" / "step-000020")
    tok = get_tokenizer()
    new = again.generate(tok.encode("def hash(self"), 12)
    console.print(f"reloaded and generated: {tok.decode(new)!r}")


def eval_demo(workdir: Path) -> None:
    """NIAH through the memory pipeline: does recall put the needle in a 300-token context?"""
    from engram_sdk.evals import CallableAdapter, MemoryAdapter, run_niah

    echo = CallableAdapter(lambda prompt: prompt, name="echo")
    pipeline = MemoryAdapter(echo, max_tokens=300)
    report = run_niah(
        pipeline,
        lengths=(2048, 8192),
        depths=(0, 50, 100),
        out_dir=workdir / "eval",
        progress=False,
    )
    for length, score in sorted(report.average.items()):
        console.print(
            f"needle recalled into a 300-token context from {length:,} tokens: {score:.0f}%"
        )
    console.print(f"report (JSON, Markdown, heatmap PNG) in {workdir / 'eval'}")


def quickstart(
    file: Annotated[
        Path | None, typer.Argument(help="text to address (default: built-in sample)")
    ] = None,
) -> None:
    """Run the SDK end to end on embedded defaults (offline, CPU, about a minute).

    Example: engram quickstart README.md
    """
    text = file.read_text(errors="replace") if file else SAMPLE_TEXT
    console.rule("[bold]1. tokenizer and Engram addressing")
    addressing_demo(text)
    console.rule("[bold]2. episodic memory: ingest, search, context, sessions")
    memory_demo()
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="engram-quickstart-"))
    console.rule("[bold]3. the model: MoE transformer with Engram layers")
    model_demo(workdir)
    console.rule("[bold]4. evals: needle in a haystack through the memory pipeline")
    eval_demo(workdir)


def register(app: typer.Typer) -> None:
    """Add ``engram quickstart``."""
    app.command()(quickstart)
