"""Command groups that import a command's module only when that command is used.

``engram version`` must not pay for torch: :class:`LazyGroup` knows which module registers
each command name and imports it on first use. Every command it loads goes through
:func:`tidy_help` so help reads the same everywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.main import get_group

if TYPE_CHECKING:
    from typer._click.core import Command


class CommandModule(Protocol):
    """A module of ``engram`` commands: ``register(app)`` adds them to ``app``."""

    def register(self, app: typer.Typer) -> None: ...


class _Argument(TyperArgument):
    """A positional shown as ``NAME`` in usage lines (not ``{name}``), with no type tag."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: typer.Context) -> str | None:  # type: ignore[override]
        return None


_METAVARS = {int: "N", float: "NUMBER", str: "TEXT", Path: "PATH"}


class _Option(TyperOption):
    """An option shown with no type tag: a flag alone, a valued option with a short metavar."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:  # type: ignore[override]
        if self.is_flag or self.count:
            return None
        if self.metavar:
            return self.metavar
        return _METAVARS.get(self.type_descriptor.annotation, (self.name or "value").upper())


def tidy_help(command: Command) -> None:
    """Help without ``<int>``-style tags; positionals in capitals (recursively for groups).

    Typer builds every parameter itself and offers no hook to choose their classes, so the
    built parameters are given the subclasses above, which change only how help shows them.
    """
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
            if param.metavar is None and param.name:
                param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
        elif type(param) is TyperOption:
            param.__class__ = _Option
    if isinstance(command, TyperGroup) and not isinstance(command, LazyGroup):
        for sub in command.commands.values():
            tidy_help(sub)


class LazyGroup(TyperGroup):
    """A group whose commands are registered by modules imported on first use.

    ``modules`` maps each command name to the module whose ``register(app)`` adds it, in
    help order. Listing the commands imports every module (their top level is light);
    running one imports only its own.
    """

    modules: Mapping[str, str] = {}

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return [*self.modules, *(n for n in self.commands if n not in self.modules)]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Command | None:  # type: ignore[override]
        if cmd_name not in self.commands and cmd_name in self.modules:
            self.load(self.modules[cmd_name])
        return self.commands.get(cmd_name)

    def load(self, module_name: str) -> None:
        """Import ``module_name``, run its ``register`` and adopt the commands it added."""
        scratch = typer.Typer(rich_markup_mode=self.rich_markup_mode)
        cast(CommandModule, importlib.import_module(module_name)).register(scratch)
        for name, command in get_group(scratch).commands.items():
            tidy_help(command)
            self.commands.setdefault(name, command)


def lazy_group(modules: Mapping[str, str], **attrs: object) -> type[LazyGroup]:
    """A :class:`LazyGroup` subclass bound to ``modules`` (Typer builds groups from a class)."""
    return type("BoundLazyGroup", (LazyGroup,), {"modules": dict(modules), **attrs})
