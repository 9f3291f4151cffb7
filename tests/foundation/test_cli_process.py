"""The ``engram`` command as a process: what a fresh interpreter imports, the installed script.

These need a real subprocess: the test process has torch loaded already.
"""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

LIGHT_COMMANDS = [
    ["version"],
    ["--help"],
    ["ingest", "{src}", "--store", "{store}", "--no-progress"],
    ["search", "hello", "--store", "{store}"],
    ["context", "hello", "--store", "{store}"],
    ["sessions", "ls", "--store", "{store}"],
    ["sessions", "export", "nope", "{tmp}/x.jsonl", "--store", "{store}"],
    ["tokenize", "{src}/a.py", "--count"],
    ["store", "info", "{store}"],
]

PROBE = """
import json, sys
from engram_sdk.cli.main import main
report = []
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    report.append([argv, code, "torch" in sys.modules])
print(json.dumps(report), file=sys.stderr)
"""


def test_light_commands_never_import_torch(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("def hello():\n    return 1\n")
    fill = {"{src}": str(src), "{store}": f"lmdb://{tmp_path / 'mem'}", "{tmp}": str(tmp_path)}
    argvs = []
    for argv in LIGHT_COMMANDS:
        for key, value in fill.items():
            argv = [a.replace(key, value) for a in argv]
        argvs.append(argv)
    run = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stderr.strip().splitlines()[-1])
    codes = [code for _, code, _ in report]
    assert codes == [0] * (len(argvs) - 3) + [2, 0, 0], report  # export of a missing session: 2
    assert [argv for argv, _, torch in report if torch] == []


def installed_script() -> Path:
    script = Path(sysconfig.get_path("scripts")) / "engram"
    if not script.exists():
        pytest.skip(f"no installed engram script at {script}")
    return script


def test_installed_script_passes_on_the_exit_code(tmp_path: Path) -> None:
    script = str(installed_script())
    ok = subprocess.run([script, "version"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("engram-sdk ")
    bad = subprocess.run(
        [script, "store", "info", f"lmdb://{tmp_path / 'none'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "none" in bad.stderr
