"""engram-sdk: long-context memory and retrieval built on Engram N-gram addressing.

The public API is re-exported here lazily, so ``import engram_sdk`` stays cheap.
"""

from __future__ import annotations

from engram_sdk._version import __version__

TYPE_CHECKING = False  # (not typing's: ``import engram_sdk`` is on every CLI call's path)
if TYPE_CHECKING:
    from typing import Any

_EXPORTS = {
    "Tokenizer": "engram_sdk.tokenizer",
    "get_tokenizer": "engram_sdk.tokenizer",
    "CanonicalMap": "engram_sdk.canonical",
    "NgramConfig": "engram_sdk.hashing",
    "NgramHasher": "engram_sdk.hashing",
    "EngramError": "engram_sdk.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engram_sdk' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
