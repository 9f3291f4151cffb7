"""``engram quickstart`` end to end on a folder the test writes (the eval step left out)."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


@pytest.mark.slow
def test_quickstart_answers_about_a_folder_resumes_and_cleans_up(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "heron.md").write_text("Project Heron notes.\nThe vault code of Heron is QX-7731-B.\n")
    (docs / "ferry.md").write_text("The ferry to Lundy leaves at 07:45 from Bideford.\n")
    before = set(Path(tempfile.gettempdir()).glob("engram-quickstart-*"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engram_sdk.cli.main",
            "quickstart",
            str(docs),
            "--skip-eval",
            "--question",
            "What is the vault code of Heron?",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"[{docs / 'heron.md'}:2-2]" in out  # the line cited (focus format), verbatim
    answer = re.search(r"with memory: (.*)", out)
    assert answer and "QX-7731-B" in answer.group(1)
    assert "2 earlier turns" in out  # the new process resumed the stored session
    assert len(re.findall(r"step \d took [\d.]+ s", out)) == 4
    after = set(Path(tempfile.gettempdir()).glob("engram-quickstart-*"))
    assert after == before  # the temporary folder is gone


def test_quickstart_refuses_a_missing_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engram_sdk.cli.main", "quickstart", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "is not a folder" in done.stderr


@pytest.mark.slow
def test_the_default_question_is_answered_from_memory_naming_the_right_file() -> None:
    import json as json_package

    from engram_sdk.cli.quickstart_cmd import DEFAULT_QUESTION
    from engram_sdk.llm import SamplingOptions, augmented_turn, load_backend
    from engram_sdk.memory import Memory

    folder = Path(json_package.__file__).parent
    # the oracle: the file that assigns NUMBER_RE, read from disk
    defining = [p.name for p in folder.glob("*.py") if "\nNUMBER_RE = " in p.read_text()]
    assert "NUMBER_RE" in DEFAULT_QUESTION and len(defining) == 1
    backend = load_backend()
    with Memory.open("dram://") as mem:
        mem.ingest(folder, progress=False)
        ask = [{"role": "user", "content": DEFAULT_QUESTION}]
        opts = SamplingOptions(max_tokens=48)
        turn = augmented_turn(backend, memory=mem, messages=ask, options=opts, memory_tokens=400)
        plain = augmented_turn(backend, memory=None, messages=ask, options=opts)
        answer, without = turn.complete().text, plain.complete().text
    backend.close()
    assert re.search(r"(?<!\w)" + re.escape(defining[0]), answer), answer
    assert not re.search(r"(?<!\w)" + re.escape(defining[0]), without), without
    assert Path(turn.citations[0].source).name == defining[0]
