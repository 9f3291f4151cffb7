"""CI runs what the README tells a newcomer to type, in a fresh virtualenv."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_test_command() -> str:
    """The command of the README's "2. install and run the tests" block."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "run the tests" in b]
    (command,) = [line for line in block.splitlines() if not line.startswith("#")]
    return command


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    printed = subprocess.run(
        [ROOT / ".ci" / "run", "--print-command"], capture_output=True, text=True, check=True
    ).stdout
    assert printed == readme_test_command() + "\n"
    assert "pytest" in printed


@pytest.mark.slow  # ensurepip installs pip into the new venv
def test_ci_creates_its_virtualenv_inside_the_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "run", clone / ".ci" / "run")
    shutil.copy2(ROOT / "README.md", clone / "README.md")
    done = subprocess.run(
        [clone / ".ci" / "run", "--venv-only"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    prefix = Path(done.stdout.strip().splitlines()[-1])
    assert prefix == clone / ".ci" / "venv" and (prefix / "pyvenv.cfg").is_file()
    assert "include-system-site-packages = false" in (prefix / "pyvenv.cfg").read_text()
