"""The memory CLI: verbatim output (never rich markup), ripgrep-style lines when piped,
the --json schema, clear errors for missing sessions, help everywhere, no torch."""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.main import get_command

from engram_sdk.cli import memory_cmd
from engram_sdk.cli.memory_output import SEARCH_OUTPUT_FORMAT_VERSION, SearchOutput, print_hits
from engram_sdk.memory import Memory

# the memory commands alone, as `engram` runs them, without importing any other command
RUNNER = (
    "import sys, typer\n"
    "from engram_sdk.cli.memory_cmd import register\n"
    "app = typer.Typer(pretty_exceptions_enable=False)\n"
    "register(app)\n"
    "try:\n"
    "    app(sys.argv[1:], prog_name='engram', standalone_mode=False)\n"
    "except Exception as exc:\n"
    "    print(f'error: {exc}', file=sys.stderr)\n"
    "    sys.exit(2)\n"
    "assert 'torch' not in sys.modules, 'a memory command imported torch'\n"
)
HOSTILE_LINES = [
    "def get(self, key):",
    "    return self.data[key]",
    "# closes a tag: [/b] and opens [bold red]none[/bold red]",
    ":emoji: [link=https://x]y[/link] \\[escaped]",
]


def engram(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "proj[v2]"
    root.mkdir()
    (root / "store[1].py").write_text("\n".join(HOSTILE_LINES) + "\n")
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        mem.ingest(root, progress=False)
    return root, uri


def test_piped_search_prints_path_line_text_like_ripgrep(project: tuple[Path, str]) -> None:
    root, uri = project
    source = root / "store[1].py"
    for query in ("return self.data[key]", "[/b]", "[link=https://x]"):
        out = engram("search", query, "--store", uri)
        assert out.returncode == 0, out.stderr
        oracle = [
            f"{source}:{n}:{line.strip()}"
            for n, line in enumerate(HOSTILE_LINES, start=1)
            if query in line
        ]
        assert out.stdout.splitlines()[: len(oracle)] == oracle
        if shutil.which("rg"):
            rg = subprocess.run(
                ["rg", "-n", "-F", "--no-heading", "--with-filename", query, str(source)],
                capture_output=True,
                text=True,
            )
            from_rg = []
            for ln in rg.stdout.splitlines():
                number, text = ln.removeprefix(f"{source}:").split(":", 1)
                from_rg.append(f"{source}:{number}:{text.strip()}")
            assert from_rg == oracle


def test_long_paths_are_never_cut_when_piped(tmp_path: Path) -> None:
    deep = tmp_path / ("very_long_folder_name_" * 6) / "venv2" / "lib" / "python3.11"
    deep.mkdir(parents=True)
    (deep / "mod.py").write_text("x = 1\nspecial_marker_identifier = 2\n")
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        mem.ingest(tmp_path / ("very_long_folder_name_" * 6), progress=False)
    out = engram("search", "special_marker_identifier", "--store", uri)
    assert out.stdout.splitlines()[0] == f"{deep / 'mod.py'}:2:special_marker_identifier = 2"


def test_json_output_has_a_versioned_schema(project: tuple[Path, str]) -> None:
    root, uri = project
    out = engram("search", "self.data[key]", "--store", uri, "--json", "-k", "3")
    parsed = SearchOutput.model_validate_json(out.stdout)
    raw = json.loads(out.stdout)
    assert raw["format_version"] == SEARCH_OUTPUT_FORMAT_VERSION == parsed.format_version
    assert (parsed.query, parsed.scope, parsed.k) == ("self.data[key]", "default", 3)
    assert parsed.hits[0].source == str(root / "store[1].py") and parsed.hits[0].line_start == 2
    assert parsed.hits[0].snippet == "return self.data[key]"
    ctx = json.loads(engram("context", "self.data[key]", "--store", uri, "--json").stdout)
    assert ctx["format_version"] == 1 and "return self.data[key]" in ctx["text"]


def test_terminal_table_prints_markup_verbatim(project: tuple[Path, str]) -> None:
    root, uri = project
    with Memory.open(uri, "r") as mem:
        hits = mem.search("[/b]", k=1)
    screen = Console(file=io.StringIO(), width=400, markup=False, highlight=False)
    print_hits(hits, tty=True, to=screen)
    shown = screen.file.getvalue()
    assert f"{root / 'store[1].py'}:3" in shown
    assert HOSTILE_LINES[2].strip() in shown


def test_sessions_show_prints_stored_markup_verbatim(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        from engram_sdk.sessions import Session

        Session(mem, "s", scope="default").append("user", "close [/b] and [red]x[/red]")
    out = engram("sessions", "show", "s", "--store", uri)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "user: close [/b] and [red]x[/red]\n"


@pytest.mark.parametrize("command", ["show", "rm", "export"])
def test_a_missing_session_is_a_clear_error(tmp_path: Path, command: str) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    Memory.open(uri).close()
    extra = [str(tmp_path / "out.jsonl")] if command == "export" else []
    argv = [sys.executable, "-m", "engram_sdk.cli.main", "sessions", command, "nope", *extra]
    out = subprocess.run(
        [*argv, "--store", uri],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "session 'nope' does not exist" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_every_option_and_argument_has_help() -> None:
    app = typer.Typer()
    memory_cmd.register(app)
    group = get_command(app)
    missing = []

    def walk(cmd: object, path: str) -> None:
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {sub_name}")
        for param in getattr(cmd, "params", []):
            if not getattr(param, "help", None):
                missing.append(f"{path} {param.name}")

    walk(group, "engram")
    assert [m for m in missing if not m.startswith("engram chat")] == []


def test_sources_and_forget_commands(project: tuple[Path, str]) -> None:
    root, uri = project
    with Memory.open(uri) as mem:
        mem.add("first note notemarkerone", source="n.md", metadata={"who": "ann"})
        mem.add("second note notemarkertwo", source="n.md", metadata={"who": "bob"})
    listed = engram("sources", "--store", uri)
    expected = {f"default\t{root / 'store[1].py'}\t1\t", "default\tn.md\t2\t"}
    size = (root / "store[1].py").stat().st_size
    assert set(listed.stdout.splitlines()) == {
        line + (str(size) if "store[1]" in line else "") for line in expected
    }
    out = engram("forget", "--meta", "who=ann", "--store", uri)
    assert out.returncode == 0 and out.stdout == "forgot 1 passages\n"
    rows = [json.loads(line) for line in engram("sources", "--json", "--store", uri).stdout.split()]
    assert {(r["source"], r["passages"]) for r in rows} == {
        (str(root / "store[1].py"), 1),
        ("n.md", 1),
    }
    bad = engram("forget", "--meta", "nokey", "--store", uri)
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr
