"""The ``engram`` command: output against the library, exit codes and one-line errors.

Run in process through ``main(argv)`` (the ``engram_cli`` fixture); the process-level
behaviour (what a fresh interpreter imports, the installed script) is in test_cli_process.py.
"""

import json
from pathlib import Path

import pytest

from engram_sdk.tokenizer import get_tokenizer
from tests.conftest import CliRunner


def test_help_and_version(engram_cli: CliRunner) -> None:
    out = engram_cli("--help")
    assert out.returncode == 0 and "tokenize" in out.stdout
    from engram_sdk import __version__

    assert engram_cli("version").stdout.strip() == f"engram-sdk {__version__}"


def test_tokenize_count_and_json_match_the_library(engram_cli: CliRunner, tmp_path: Path) -> None:
    text = "Only Alexander the Great could tame the horse Bucephalus.\n" * 3
    f = tmp_path / "a.txt"
    f.write_text(text)
    tok = get_tokenizer()
    assert engram_cli("tokenize", f, "--count").stdout.strip() == str(tok.count(text))
    data = json.loads(engram_cli("tokenize", f, "--canonical", "--json").stdout)
    assert data["ids"] == tok.encode(text)
    assert data["canonical_ids"] == tok.canonicalize(tok.encode(text)).tolist()
    assert data["canonical_vocab"] == tok.canonical.size


def test_tokenize_reads_stdin_for_a_dash(engram_cli: CliRunner) -> None:
    text = "def main():\n    return 42\n"
    out = engram_cli("tokenize", "-", "--count", stdin=text)
    assert out.returncode == 0 and out.stdout.strip() == str(get_tokenizer().count(text))


def test_tokenize_table_shows_canonical_column(engram_cli: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "b.txt"
    f.write_text("Hello HELLO hello")
    out = engram_cli("tokenize", f, "--canonical")
    assert out.returncode == 0
    assert "canonical" in out.stdout and "reduction" in out.stdout


def test_errors_are_one_line_with_nonzero_exit(engram_cli: CliRunner, tmp_path: Path) -> None:
    missing = engram_cli("tokenize", tmp_path / "nope.txt")
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0 and "nope.txt" in missing.stderr
    folder = engram_cli("tokenize", tmp_path)
    assert folder.returncode != 0 and "not a regular file" in folder.stderr
    usage = engram_cli("no-such-command")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_error_text_is_printed_verbatim_not_as_markup(
    engram_cli: CliRunner, tmp_path: Path
) -> None:
    missing = tmp_path / "proj[v2]" / "[/b]notes.txt"
    out = engram_cli("tokenize", missing)
    assert out.returncode != 0 and str(missing) in out.stderr


def test_undecodable_bytes_survive(engram_cli: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "bin.txt"
    f.write_bytes(b"ok \xff\xfe bytes")
    out = engram_cli("tokenize", f, "--count")
    assert out.returncode == 0 and int(out.stdout) > 0


def test_file_names_in_tables_are_printed_verbatim(
    engram_cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("notes[v2].txt").write_text("some [bold]text[/bold]")
    out = engram_cli("tokenize", "notes[v2].txt")
    assert out.returncode == 0 and "notes[v2].txt" in out.stdout
