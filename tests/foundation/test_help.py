"""``engram … --help`` explains every command and option, in plain words.

The command tree is walked from the real root group, so a command added anywhere is checked.
"""

import importlib
import re
from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperArgument, TyperGroup
from typer.main import get_group

from engram_sdk.cli.main import COMMAND_MODULES, COMMANDS, build_root
from tests.conftest import CliRunner

OWN_MODULES = {"engram_sdk.cli.basic_cmd", "engram_sdk.cli.model_cmd", "engram_sdk.cli.bench_cmd"}
OTHERS_MAIN_COMMANDS = ["quickstart", "ingest", "search", "context", "sessions", "store", "eval"]
TYPE_TAG = re.compile(r"<(bool|str|int|float|list\[\w+\])>")


def walk(group: TyperGroup, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name), command
        if isinstance(command, TyperGroup):
            yield from walk(command, (*path, name))


def commands_of(modules: set[str] | None) -> list[tuple[tuple[str, ...], object]]:
    """Every command, or those registered by ``modules`` (benchmarks belong to their owners)."""
    chosen = []
    for path, command in walk(build_root()):
        a_benchmark = path[0] == "bench" and len(path) > 1
        if modules is None or (COMMANDS[path[0]] in modules and not a_benchmark):
            chosen.append((path, command))
    return chosen


def undocumented(commands: list[tuple[tuple[str, ...], object]]) -> list[str]:
    missing = []
    for path, command in commands:
        if not command.help:
            missing.append(" ".join(path))
        for param in command.params:
            if not param.help and not (isinstance(param, TyperArgument) and param.hidden):
                missing.append(f"{' '.join(path)} {param.opts[0] if param.opts else param.name}")
    return missing


def test_commands_map_names_the_module_that_registers_each_command() -> None:
    registered = {}
    for module in COMMAND_MODULES:
        scratch = typer.Typer()
        importlib.import_module(module).register(scratch)
        registered |= dict.fromkeys(get_group(scratch).commands, module)
    assert registered == COMMANDS


def test_every_command_is_listed_in_root_help(engram_cli: CliRunner) -> None:
    out = engram_cli("--help").stdout
    for name in COMMANDS:
        assert re.search(rf"│ {re.escape(name)}\s", out), name


def test_help_shows_no_type_tags_and_capitalised_positionals(engram_cli: CliRunner) -> None:
    for path, _ in commands_of(None):
        out = engram_cli(*path, "--help")
        assert out.returncode == 0, (path, out.stderr)
        assert not TYPE_TAG.search(out.stdout), (path, TYPE_TAG.findall(out.stdout))
        usage = next(line for line in out.stdout.splitlines() if "Usage:" in line)
        assert "{" not in usage, usage


def test_our_commands_document_every_option() -> None:
    assert undocumented(commands_of(OWN_MODULES)) == []


def test_every_command_documents_every_option() -> None:
    assert undocumented(commands_of(None)) == []


@pytest.mark.parametrize("name", OTHERS_MAIN_COMMANDS)
def test_main_commands_show_an_example(engram_cli: CliRunner, name: str) -> None:
    assert "Example" in engram_cli(name, "--help").stdout


@pytest.mark.parametrize("name", ["tokenize", "model", "train", "bench"])
def test_our_main_commands_show_an_example(engram_cli: CliRunner, name: str) -> None:
    assert "Example" in engram_cli(name, "--help").stdout
