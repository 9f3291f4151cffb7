"""The built wheel installs one namespace, ``engram_sdk``, with all four parts inside.

The fresh venv sees the same dependencies as the interpreter running the tests, whatever
that is (a venv, a conda-like prefix, a bare interpreter): it is created from the base
interpreter with its site-packages, and a ``.pth`` file adds the running interpreter's
site directories (an outer venv's, the user's) that the base does not have.
"""

import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*cmd: str | Path, cwd: Path | None = None) -> str:
    """Run ``cmd``; on failure, fail the test with its exit code, stdout and stderr."""
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))}\nexited {done.returncode}\n"
            f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}",
            pytrace=False,
        )
    return done.stdout


def running_site_dirs() -> list[str]:
    """The site directories the running interpreter imports from: its prefix's (a venv's or
    a conda environment's), the user's, and any site directory a ``.pth`` file added."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    dirs += [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    return [d for d in dict.fromkeys(dirs) if Path(d).is_dir()]


def make_venv_like_this_interpreter(venv: Path) -> Path:
    """A venv from the base interpreter that imports what this interpreter imports."""
    base = getattr(sys, "_base_executable", sys.executable)
    run(base, "-m", "venv", "--without-pip", "--system-site-packages", venv)
    py = venv / "bin" / "python"
    purelib = run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    Path(purelib, "zz_outer_site.pth").write_text("\n".join(running_site_dirs()) + "\n")
    return py


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, ROOT)
    (whl,) = out.glob("engram_sdk-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_has_only_the_engram_sdk_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"engram_sdk"}
    for part in ("model", "stores", "evals"):
        assert f"engram_sdk/{part}/__init__.py" in names
    assert "engram_sdk/py.typed" in names


PROBE = """
import importlib.util as u, engram_sdk, engram_sdk.model, engram_sdk.stores, engram_sdk.evals
mods = [engram_sdk, engram_sdk.model, engram_sdk.stores, engram_sdk.evals]
print("\\n".join(m.__file__ for m in mods))
print([n for n in ("model", "stores", "evals") if u.find_spec(n) is not None])
"""


@pytest.mark.slow
def test_wheel_installs_and_imports_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    py = make_venv_like_this_interpreter(venv)
    # the running interpreter's pip installs into the new venv (which has none of its own)
    run(sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", wheel)
    *files, leaked = run(py, "-I", "-c", PROBE, cwd=tmp_path).strip().splitlines()
    assert all(str(venv) in f for f in files), files
    assert leaked == "[]"
    assert run(venv / "bin" / "engram", "version").startswith("engram-sdk ")
