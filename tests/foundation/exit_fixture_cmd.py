"""Commands that fail in each way a command can, registered by test_exit_codes.py."""

import typer


def returns_three() -> int:
    """Return exit code 3."""
    return 3


def raises_exit_four() -> None:
    """Raise ``typer.Exit(4)``."""
    raise typer.Exit(4)


def raises_unexpected() -> None:
    """Raise an exception no handler expects."""
    raise RuntimeError("[bold]boom[/bold]")


def register(app: typer.Typer) -> None:
    """Add the three commands."""
    app.command("returns-three")(returns_three)
    app.command("raises-exit-four")(raises_exit_four)
    app.command("raises-unexpected")(raises_unexpected)
