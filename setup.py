"""Maps the top-level folders onto the single ``engram_sdk`` namespace (see docs/architecture.md)."""

from pathlib import Path

from setuptools import setup

ROOTS = {
    "engram_sdk": "engram_sdk",
    "engram_sdk.model": "model",
    "engram_sdk.stores": "stores",
    "engram_sdk.evals": "evals",
}


def discover() -> list[str]:
    """Every folder with an ``__init__.py`` under each root, named in the namespace."""
    here = Path(__file__).parent
    names: list[str] = []
    for package, folder in ROOTS.items():
        base = here / folder
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base).parts
            names.append(".".join((package, *rel)))
    return names


setup(packages=discover(), package_dir=ROOTS)
