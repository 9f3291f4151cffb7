"""The ``engram`` command: real subprocesses, exit codes and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

from engram_sdk.tokenizer import get_tokenizer


def engram(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engram_sdk.cli.main", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def test_help_and_version() -> None:
    out = engram("--help")
    assert out.returncode == 0 and "tokenize" in out.stdout
    from engram_sdk import __version__

    assert engram("version").stdout.strip() == f"engram-sdk {__version__}"


def test_tokenize_count_and_json_match_the_library(tmp_path: Path) -> None:
    text = "Only Alexander the Great could tame the horse Bucephalus.\n" * 3
    f = tmp_path / "a.txt"
    f.write_text(text)
    tok = get_tokenizer()
    assert engram("tokenize", str(f), "--count").stdout.strip() == str(tok.count(text))
    data = json.loads(engram("tokenize", str(f), "--canonical", "--json").stdout)
    assert data["ids"] == tok.encode(text)
    assert data["canonical_ids"] == tok.canonicalize(tok.encode(text)).tolist()
    assert data["canonical_vocab"] == tok.canonical.size


def test_tokenize_table_shows_canonical_column(tmp_path: Path) -> None:
    f = tmp_path / "b.txt"
    f.write_text("Hello HELLO hello")
    out = engram("tokenize", str(f), "--canonical")
    assert out.returncode == 0
    assert "canonical" in out.stdout and "reduction" in out.stdout


def test_errors_are_one_line_with_nonzero_exit(tmp_path: Path) -> None:
    missing = engram("tokenize", str(tmp_path / "nope.txt"))
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0 and "nope.txt" in missing.stderr
    folder = engram("tokenize", str(tmp_path))
    assert folder.returncode != 0 and "not a regular file" in folder.stderr
    usage = engram("no-such-command")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_undecodable_bytes_survive(tmp_path: Path) -> None:
    f = tmp_path / "bin.txt"
    f.write_bytes(b"ok \xff\xfe bytes")
    out = engram("tokenize", str(f), "--count")
    assert out.returncode == 0 and int(out.stdout) > 0
