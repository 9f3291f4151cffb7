"""Per-user folders: where caches and the default memory live.

``ENGRAM_HOME`` moves everything; ``ENGRAM_CACHE_DIR`` and ``ENGRAM_DATA_DIR`` move one
each. Otherwise the XDG base directories are used.
"""

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def cache_dir() -> Path:
    """Folder for rebuildable caches (canonical-id tables, compiled kernels)."""
    if override := os.environ.get("ENGRAM_CACHE_DIR"):
        return Path(override)
    if home := os.environ.get("ENGRAM_HOME"):
        return Path(home) / "cache"
    return _xdg("XDG_CACHE_HOME", ".cache") / "engram-sdk"


def data_dir() -> Path:
    """Folder for user data that must not be thrown away (the default memory store)."""
    if override := os.environ.get("ENGRAM_DATA_DIR"):
        return Path(override)
    if home := os.environ.get("ENGRAM_HOME"):
        return Path(home) / "data"
    return _xdg("XDG_DATA_HOME", ".local/share") / "engram-sdk"
