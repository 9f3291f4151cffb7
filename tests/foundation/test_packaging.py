"""The built wheel installs one namespace, ``engram_sdk``, with all four parts inside."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
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


@pytest.mark.slow
def test_wheel_installs_and_imports_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # system site-packages provide torch & co. so nothing is downloaded; the wheel itself is
    # installed into the venv, which comes first on sys.path
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import importlib.util as u, engram_sdk, engram_sdk.model, engram_sdk.stores, engram_sdk.evals;"
        "import sys;"
        "mods=[engram_sdk, engram_sdk.model, engram_sdk.stores, engram_sdk.evals];"
        "print('\\n'.join(m.__file__ for m in mods));"
        "print([n for n in ('model','stores','evals') if u.find_spec(n) is not None])"
    )
    run = subprocess.run(
        [str(py), "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    *files, leaked = run.stdout.strip().splitlines()
    assert all(str(venv) in f for f in files), files
    assert leaked == "[]"
    version = subprocess.run(
        [str(venv / "bin" / "engram"), "version"], capture_output=True, text=True, check=True
    )
    assert "engram-sdk" in version.stdout
