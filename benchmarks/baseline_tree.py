"""The baseline checkout of an A/B benchmark: a folder as given, or a git revision of this
repository extracted (``git archive``) into a scratch folder."""

from __future__ import annotations

import subprocess
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
