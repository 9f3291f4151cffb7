"""Every ``engram`` command exits non-zero when it fails or finds a problem.

Each failure path reachable today is driven through the real entry point, ``main(argv)``,
and its exit code checked: 2 for bad input (usage errors, missing files, invalid values),
1 for a problem found (``store verify``) or an unexpected error.
"""

from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import open_store

from engram_sdk.cli import main as cli_main
from tests.conftest import CliRunner

FIXTURE_COMMANDS = {
    name: "tests.foundation.exit_fixture_cmd"
    for name in ("returns-three", "raises-exit-four", "raises-unexpected")
}


@pytest.fixture
def with_fixture_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "COMMANDS", {**cli_main.COMMANDS, **FIXTURE_COMMANDS})


@pytest.mark.usefixtures("with_fixture_commands")
def test_returned_and_raised_codes_become_the_exit_code(engram_cli: CliRunner) -> None:
    assert engram_cli("returns-three").returncode == 3
    assert engram_cli("raises-exit-four").returncode == 4
    unexpected = engram_cli("raises-unexpected")
    assert unexpected.returncode == 1
    assert "RuntimeError: [bold]boom[/bold]" in unexpected.stderr  # verbatim, not markup


def test_success_and_help_exit_zero(engram_cli: CliRunner) -> None:
    assert engram_cli("version").returncode == 0
    assert engram_cli("store", "--help").returncode == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["search"],  # missing argument
        ["search", "x", "-k", "many"],  # not a number
        ["train", "data.txt", "--steps", "-1"],
        ["train", "data.txt", "--batch-size", "0"],
        ["train", "data.txt", "--lr", "0"],
        ["model", "info", "no-such-preset"],
        ["tokenize", "missing.txt"],
        ["quickstart", "missing.txt"],
        ["store", "info", "lmdb://{tmp}/no-store"],
        ["store", "verify", "shards://{tmp}/no-store"],
        ["store", "convert", "dram://", "dram://"],
        ["search", "x", "--store", "lmdb://{tmp}/no-store"],
        ["context", "x", "--store", "lmdb://{tmp}/no-store"],
        ["ingest", "{tmp}/missing-folder", "--store", "lmdb://{tmp}/mem", "--no-progress"],
        ["sessions", "ls", "--store", "lmdb://{tmp}/no-store"],
        ["eval", "niah", "-m", "oracle", "--lengths", "lots", "--out", "{tmp}/e"],
        ["bench", "no-such-benchmark"],
        ["chat"],  # --session is required
        ["model", "info"],
        ["tokenize", "data.txt", "--encoding", "no-such-encoding"],
        ["store", "convert", "lmdb://{tmp}/no-store", "dram://"],
        ["ingest", "{tmp}", "--store", "bogus://x", "--no-progress"],
        ["sessions", "import", "{tmp}/missing.jsonl", "--store", "lmdb://{tmp}/mem"],
        ["eval", "ruler", "-m", "oracle", "--tasks", "no-such-task", "--out", "{tmp}/e"],
        ["eval", "niah", "-m", "no-such:model", "--out", "{tmp}/e"],
    ],
)
def test_bad_input_exits_2_without_a_traceback(
    engram_cli: CliRunner, tmp_path: Path, argv: list[str]
) -> None:
    (tmp_path / "data.txt").write_text("some text to train on\n")
    out = engram_cli(*(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stderr.strip()


def test_store_verify_exits_1_when_a_checksum_fails(engram_cli: CliRunner, tmp_path: Path) -> None:
    uri = f"shards://{tmp_path / 's'}"
    with open_store(uri, "w") as store:
        store.create_table("t", 4096, 64)
        store.scatter("t", np.arange(4096), np.ones((4096, 64), np.float32))
    assert engram_cli("store", "verify", uri).returncode == 0
    (shard,) = (tmp_path / "s" / "data").glob("t.*.bin")
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    out = engram_cli("store", "verify", uri)
    assert out.returncode == 1 and "BAD" in out.stdout and shard.name in out.stdout


@pytest.fixture
def memory_uri(engram_cli: CliRunner, tmp_path: Path) -> str:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("def hello():\n    return 1\n")
    uri = f"lmdb://{tmp_path / 'mem'}"
    assert engram_cli("ingest", tmp_path / "src", "--store", uri, "--no-progress").returncode == 0
    return uri


def test_exporting_a_missing_session_exits_2(
    engram_cli: CliRunner, memory_uri: str, tmp_path: Path
) -> None:
    out = engram_cli("sessions", "export", "nope", tmp_path / "x.jsonl", "--store", memory_uri)
    assert out.returncode == 2 and "nope" in out.stderr


@pytest.mark.parametrize("verb", ["show", "rm"])
def test_a_missing_session_exits_2(engram_cli: CliRunner, memory_uri: str, verb: str) -> None:
    out = engram_cli("sessions", verb, "nope", "--store", memory_uri)
    assert out.returncode == 2 and "nope" in out.stderr


@pytest.mark.parametrize(
    "argv", [["bench", "hashing", "--tokens", "0"], ["bench", "stores", "--rows", "0"]]
)
def test_benchmarks_fail_on_empty_sizes(engram_cli: CliRunner, argv: list[str]) -> None:
    out = engram_cli(*argv)
    assert out.returncode != 0 and "Traceback" not in out.stderr
