"""``engram search`` without the CLI framework: the same hits and output as the full
command, every option honoured, anything unusual handed back to the full command."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engram_sdk.cli.fast_search import SearchArgs, parse
from engram_sdk.memory import Memory

FILES = {
    "a.py": "def alpha_beta():\n    return AttributeError('x')\n",
    "pkg/b.py": "class Beta:\n    x = alpha_beta()  # ALPHA_beta here\n",
    "docs/c.md": "Nothing to see [bold]here[/bold].\n",
    "long.py": "".join(f"gamma_delta_{i} = {i}  # line {i} of a long file\n" for i in range(400)),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("fast")
    root = tmp / "proj"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    uri = f"lmdb://{tmp / 'mem'}"
    with Memory.open(uri) as mem:
        mem.ingest(root, progress=False)
    return root, uri


def test_parse_reads_every_option_of_the_full_command() -> None:
    args = ["q", "-k", "3", "--regex", "--glob=*.py", "--store", "lmdb://x", "--scope", "s"]
    assert parse([*args, "--exact-case", "--json", "--all", "-l"]) == SearchArgs(
        "q", 3, True, True, "*.py", "lmdb://x", "s", True, True, True
    )
    assert parse(["-k5", "--", "--not-an-option"]) == SearchArgs("--not-an-option", k=5)


@pytest.mark.parametrize(
    "args",
    [[], ["a", "b"], ["q", "--help"], ["q", "--bogus"], ["q", "-k"], ["q", "-k", "x"], ["q", "-x"]],
)
def test_unusual_calls_go_to_the_full_command(args: list[str]) -> None:
    assert parse(args) is None


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--exact-case"],
        ["--all"],
        ["--glob", "*.py"],
        ["--regex"],
        ["-k", "1"],
        ["--json"],
        ["-l", "--all"],
    ],
)
def test_fast_output_equals_the_full_commands(engram_cli, project, options: list[str]) -> None:
    _, uri = project
    query = "alpha_?beta" if "--regex" in options else "alpha_beta"
    args = ["search", query, "--store", uri, *options]
    fast = engram_cli(*args)
    full = engram_cli(*args, env={"ENGRAM_FULL_CLI": "1"})
    assert (fast.returncode, fast.stdout) == (full.returncode, full.stdout) and fast.returncode == 0
    assert fast.stdout


@pytest.mark.skipif(shutil.which("rg") is None, reason="needs ripgrep")
def test_piped_hits_are_the_files_ripgrep_finds(engram_cli, project) -> None:
    root, uri = project
    for query in ("alpha_beta", "AttributeError", "[bold]"):
        out = engram_cli("search", query, "--all", "--store", uri).stdout
        found = {line.split(":", 1)[0] for line in out.splitlines()}
        rg = subprocess.run(["rg", "-F", "-i", "-l", "--", query, str(root)], capture_output=True)
        assert found == {str(Path(p).resolve()) for p in rg.stdout.decode().split()}, query


@pytest.mark.skipif(shutil.which("rg") is None, reason="needs ripgrep")
def test_files_with_matches_lists_each_file_ripgrep_lists_once(engram_cli, project) -> None:
    root, uri = project
    for query in ("alpha_beta", "beta", "[bold]", "gamma_delta"):
        rg = subprocess.run(["rg", "-F", "-i", "-l", "--", query, str(root)], capture_output=True)
        expected = sorted(str(Path(p).resolve()) for p in rg.stdout.decode().split())
        for env in ({}, {"ENGRAM_FULL_CLI": "1"}):  # the fast path and the full command
            args = ("search", query, "-l", "--all", "--store", uri)
            assert sorted(engram_cli(*args, env=env).stdout.splitlines()) == expected, (query, env)


def test_json_output_parses_with_every_hit(engram_cli, project) -> None:
    _, uri = project
    doc = json.loads(engram_cli("search", "alpha_beta", "--json", "--store", uri).stdout)
    assert doc["query"] == "alpha_beta" and len(doc["hits"]) == 2


def test_a_bad_store_is_one_error_line_with_exit_2(engram_cli, tmp_path: Path) -> None:
    result = engram_cli("search", "x", "--store", f"lmdb://{tmp_path / 'missing'}")
    assert (
        result.returncode == 2
        and result.stderr.startswith("error:")
        and "Traceback" not in result.stderr
    )


def test_a_piped_search_imports_no_cli_framework(project) -> None:
    _, uri = project
    probe = (
        "import sys\nfrom engram_sdk.cli.main import main\ncode = main()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'click', 'rich', 'torch'}),"
        " file=sys.stderr)\nsys.exit(code)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, "search", "alpha_beta", "--store", uri],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and run.stderr.strip() == "[]", run.stderr
    assert run.stdout.count(":") >= 4
