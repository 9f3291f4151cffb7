"""``engram model info|presets`` and ``engram train``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engram_sdk.errors import InputError

if TYPE_CHECKING:
    from engram_sdk.model.train import TrainConfig

console = Console(highlight=False)
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
model_app = typer.Typer(
    help="The built-in DeepSeek-style MoE model with Engram layers.\n\n"
    "Example: engram model info small",
    no_args_is_help=True,
)


@model_app.command()
def presets() -> None:
    """List the named presets: width, depth, experts, Engram layers.

    Example: engram model presets
    """
    from engram_sdk.model.config import PRESETS, get_preset

    table = Table("preset", "dim", "layers", "experts (active)", "engram layers", "hc", "DSA top-k")
    for name in PRESETS:
        c = get_preset(name)
        table.add_row(
            name,
            str(c.dim),
            str(c.n_layers),
            f"{c.n_routed_experts} ({c.n_activated_experts})",
            str(c.engram_layer_ids),
            str(c.hc_mult),
            str(c.dsa_topk or "dense"),
        )
    console.print(table)


@model_app.command()
def info(
    preset: Annotated[
        str,
        typer.Argument(
            help="preset name (tiny, small, base, deepseek-v3-671b, ...; see engram model presets)"
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Total, active-per-token and Engram-table parameters (built on the meta device).

    Example: engram model info deepseek-v3-671b --json
    """
    from engram_sdk.model.config import get_preset
    from engram_sdk.model.info import count_parameters

    r = count_parameters(get_preset(preset))
    if as_json:
        typer.echo(r.model_dump_json())
        return
    console.print(
        f"[bold]{preset}[/]: total {r.total / 1e9:.3f} B parameters, "
        f"active per token {r.active_per_token / 1e9:.3f} B"
    )
    console.print(
        f"Engram tables {r.engram_tables / 1e9:.3f} B, routed experts {r.routed_experts / 1e9:.3f} B: "
        f"Engram is {r.engram_share_of_sparse:.1%} of the sparse parameters"
    )


def train(
    data: Annotated[
        list[Path], typer.Argument(help="files or folders of text (a codebase is fine)")
    ],
    out: Annotated[Path, typer.Option("--out", help="checkpoint folder")] = Path("engram-run"),
    preset: Annotated[str, typer.Option(help="model preset")] = "tiny",
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps")] = 100,
    batch_size: Annotated[int, typer.Option(min=1, help="sequences per step")] = 4,
    seq_len: Annotated[int, typer.Option(min=2, help="tokens per sequence")] = 128,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 3e-3,
    engram_lr: Annotated[float, typer.Option(help="learning rate of Engram tables")] = 1.5e-2,
    checkpoint_every: Annotated[
        int, typer.Option(min=0, help="steps between checkpoints (0: end only)")
    ] = 0,
    resume: Annotated[Path | None, typer.Option(help="checkpoint folder to resume from")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="show a progress bar")
    ] = True,
    nproc: Annotated[
        int,
        typer.Option(
            min=0,
            help="local ranks started with torchrun (expert parallel, sharded Engram tables, "
            "FSDP2; each trains on batch-size / N rows of every batch); 0: this process",
        ),
    ] = 0,
) -> None:
    """Train the built-in model on token streams from files or folders.

    Example: engram train src/ --steps 200 --out run1 (resume: --resume run1/step-000200);
    on 4 GPUs: engram train src/ --nproc 4 --batch-size 16
    """
    from engram_sdk.corpus import read_token_ids
    from engram_sdk.model import build_model, get_preset
    from engram_sdk.model.train import TokenStream, TrainConfig
    from engram_sdk.model.train import train as run

    for name, value in (("--lr", lr), ("--engram-lr", engram_lr)):
        if not value > 0:
            raise InputError(f"{name} {value}: expected a learning rate above 0")
    cfg = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        seq_len=seq_len,
        lr=lr,
        engram_lr=engram_lr,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    if nproc:
        _train_distributed(data, out, preset, cfg, nproc, resume=resume, progress=progress)
        return
    model = build_model(get_preset(preset, max_seq_len=max(seq_len, 128)), device=device, seed=seed)
    stream = TokenStream(read_token_ids(data))
    losses = run(model, stream, cfg, out_dir=out, resume=resume, progress=progress)
    if losses:
        console.print(
            f"trained {len(losses)} steps: loss {losses[0]:.3f} → {losses[-1]:.3f}; "
            f"checkpoint in {escape(str(out))}/step-{cfg.steps:06d}"
        )


def _train_distributed(
    data: list[Path],
    out: Path,
    preset: str,
    cfg: TrainConfig,
    nproc: int,
    *,
    resume: Path | None,
    progress: bool,
) -> None:
    """``--nproc N``: the same run on N local ranks (torchrun), see engram_sdk.distributed."""
    from engram_sdk.distributed.train_main import DistributedTrainRun, launch

    if resume is not None:
        raise InputError(
            "--resume cannot be combined with --nproc yet: load a sharded checkpoint with "
            "engram_sdk.distributed.load_sharded from Python"
        )
    run = DistributedTrainRun(
        data=[str(p) for p in data],
        out=str(out),
        preset=preset,
        train=cfg.model_dump(exclude={"format_version"}),
        progress=progress,
    )
    code = launch(run, nproc)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``model`` and ``train``."""
    app.add_typer(model_app, name="model")
    app.command()(train)
