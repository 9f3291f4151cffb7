"""The baseline checkout of an A/B benchmark: a folder as given, or a git revision of this
repository extracted (``git archive``) into a scratch folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def baseline_tree(name: str, scratch: Path) -> Path:
    """``name`` if it is a folder, else revision ``name`` extracted under ``scratch``."""
    if Path(name).is_dir():
        return Path(name)
    base = scratch / "baseline"
    base.mkdir()
    archive = subprocess.run(["git", "archive", name], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    return base


def run_in_tree(tree: Path, code: str, *args: str, drop_env: tuple[str, ...] = ()) -> dict:
    """Run ``python -c code *args`` with ``tree``'s ``engram_sdk`` (its folder first on
    ``PYTHONPATH`` and as the working folder) and parse the JSON it prints."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for name in drop_env:
        env.pop(name, None)
    argv = [sys.executable, "-c", code, *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, cwd=tree)
    return json.loads(done.stdout)
