"""`engram eval …` in a real subprocess."""

import json
import os
import subprocess
import sys


def engram(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "engram_sdk.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_ruler_and_niah_commands_write_reports(tmp_path):
    r = engram(
        "eval",
        "ruler",
        "-m",
        "oracle",
        "--tasks",
        "niah_single_1,cwe",
        "--lengths",
        "1k,2k",
        "-n",
        "2",
        "--out",
        str(tmp_path),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "ruler-oracle.json").read_text())
    assert rep["lengths"] == [1024, 2048] and rep["tasks"] == ["niah_single_1", "cwe"]
    assert rep["average"] == {"1024": 100.0, "2048": 100.0}
    r = engram(
        "eval",
        "niah",
        "-m",
        "empty",
        "--multi",
        "--lengths",
        "1k",
        "--depths",
        "0,100",
        "--out",
        str(tmp_path),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "niah-empty.json").read_text())
    assert rep["depths"] == [0.0, 100.0] and rep["average"] == {"1024": 0.0}
    assert (tmp_path / "niah-empty.png").exists()


def test_bad_inputs_print_one_line_errors(tmp_path):
    for args, needle in [
        (["eval", "ruler", "-m", "nope", "--out", str(tmp_path)], "unknown model spec"),
        (
            ["eval", "ruler", "-m", "oracle", "--tasks", "bogus", "--out", str(tmp_path)],
            "unknown task",
        ),
        (
            ["eval", "ruler", "-m", "oracle", "--lengths", "abc", "--out", str(tmp_path)],
            "--lengths",
        ),
        (
            [
                "eval",
                "niah",
                "-m",
                "oracle",
                "--haystack",
                str(tmp_path / "missing"),
                "--out",
                str(tmp_path),
            ],
            "haystack",
        ),
    ]:
        r = engram(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr


def test_python_callable_model_spec(tmp_path):
    (tmp_path / "mymodel.py").write_text(
        "import re\n"
        "def answer(prompt):\n"
        "    key = re.search(r'for ([\\w-]+) mentioned', prompt).group(1)\n"
        "    return re.search(rf'for {re.escape(key)} is: (\\d+)', prompt).group(1)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "engram_sdk.cli.main",
            "eval",
            "ruler",
            "-m",
            "python:mymodel:answer",
            "--tasks",
            "niah_single_1,niah_single_2",
            "--lengths",
            "1k",
            "-n",
            "2",
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "out" / "ruler-python_mymodel_answer.json").read_text())
    assert rep["average"] == {"1024": 100.0}
