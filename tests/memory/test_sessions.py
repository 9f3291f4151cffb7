"""Sessions: durable turns, recall across sessions, export/import, hostile ids, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engram_sdk.errors import InputError
from engram_sdk.memory import Memory
from engram_sdk.sessions import Session, import_session, list_sessions


def test_turns_survive_the_process_and_are_recalled_by_a_new_session(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    code = (
        "from engram_sdk.memory import Memory\n"
        "from engram_sdk.sessions import Session\n"
        f"m = Memory.open({uri!r})\n"
        "s = Session(m, 'monday', scope='alice')\n"
        "s.append('user', 'Remember: the storage unit door code is 7391.')\n"
        "s.append('assistant', 'Got it.')\n"
        "import os; os._exit(0)\n"  # no close(): each append was already durable
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with Memory.open(uri) as mem:
        monday = Session(mem, "monday", scope="alice")
        assert [t.role for t in monday.turns()] == ["user", "assistant"]
        assert monday.turns()[0].token_ids == mem.tokenizer.encode(monday.turns()[0].content)
        tuesday = Session(mem, "tuesday", scope="alice")
        recalled = tuesday.recall("what is the storage unit door code?")
        assert recalled and "7391" in recalled[0].snippet
        assert "7391" in tuesday.context_for("storage unit door code")
        assert Session(mem, "x", scope="bob").recall("storage unit door code") == []
        assert [s.id for s in list_sessions(mem, "alice")] == ["monday"]


def test_export_import_round_trip(tmp_path: Path) -> None:
    with Memory.open("dram://") as mem:
        s = Session(mem, "s1")
        s.append("system", "You are terse.")
        s.append("user", "Hi there", metadata={"client": "cli"})
        out = tmp_path / "s1.jsonl"
        assert s.export(out) == 2
        header = json.loads(out.read_text().splitlines()[0])["header"]
        assert header["format_version"] == 1 and header["id"] == "s1"
        copy = import_session(mem, out, session_id="s2")
        assert [(t.role, t.content, t.metadata, t.token_ids) for t in copy.turns()] == [
            (t.role, t.content, t.metadata, t.token_ids) for t in s.turns()
        ]
        with pytest.raises(InputError, match="already exists"):
            import_session(mem, out)
        bad = tmp_path / "new.jsonl"
        bad.write_text(json.dumps({"header": {**header, "format_version": 9}}) + "\n")
        with pytest.raises(InputError, match="newer"):
            import_session(mem, bad, session_id="s3")
        assert s.delete() == 2 and mem.search("Hi there", k=5) == [
            h for h in mem.search("Hi there", k=5) if h.source != "session:s1"
        ]


@pytest.mark.parametrize(
    "bad", ["", "a\x00b", "x" * 201, "../../etc/passwd\n", "\udcff", "a/b", "..", "x..y", 7]
)
def test_hostile_session_ids_are_rejected(bad: str) -> None:
    with Memory.open("dram://") as mem, pytest.raises(InputError):
        Session(mem, bad)


def test_path_like_session_ids_are_just_data(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        Session(mem, "C:\\escape", scope="../x").append("user", "hello")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mem"]
    assert sorted(p.name for p in (tmp_path / "mem").iterdir()) == [
        "data.mdb",
        "lock.mdb",
        "writer.lock",
    ]


def test_cli_ingest_search_sessions(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("def frobnicate_widget(x):\n    return x\n")
    uri = f"lmdb://{tmp_path / 'mem'}"

    def engram(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engram_sdk.cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert engram("ingest", str(tmp_path / "src"), "--store", uri, "--no-progress").returncode == 0
    hits = json.loads(engram("search", "frobnicate_widget", "--store", uri, "--json").stdout)[
        "hits"
    ]
    assert hits[0]["source"].endswith("m.py") and hits[0]["line_start"] == 1
    ctx = json.loads(
        engram(
            "context", "frobnicate_widget", "--store", uri, "--max-tokens", "50", "--json"
        ).stdout
    )
    assert ctx["tokens"] <= 50 and "frobnicate_widget" in ctx["text"]
    chat = ("chat", "--session", "c1", "--store", uri, "--max-tokens", "2")
    assert engram(*chat, stdin="hello there\n").returncode == 0
    assert "c1" in engram("sessions", "ls", "--store", uri).stdout
    out = tmp_path / "c1.jsonl"
    assert engram("sessions", "export", "c1", str(out), "--store", uri).returncode == 0
    assert engram("sessions", "import", str(out), "--session", "c2", "--store", uri).returncode == 0
    assert "hello there" in engram("sessions", "show", "c2", "--store", uri).stdout
    bad = engram("search", "x", "--store", f"lmdb://{tmp_path / 'nope'}")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
