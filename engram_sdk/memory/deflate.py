"""zlib-format compression of passage texts, through ISA-L when it is installed.

Ingest compresses every byte it stores. ISA-L's deflate (the ``isal`` package) writes the
same zlib format about 3.5 times faster than zlib's fastest level, and smaller (3.8x vs 3.7x
on Python source), so the stored bytes stay readable by :func:`zlib.decompress` and by
earlier releases. Without ``isal`` (a platform it has no wheel for), zlib level 1 is used.
"""

from __future__ import annotations

import zlib

try:
    from isal import isal_zlib
except ImportError:  # pragma: no cover - isal is a dependency; this is for odd platforms
    isal_zlib = None


def compress(data: bytes) -> bytes:
    """``data`` in the zlib format, compressed fast (ISA-L level 1, else zlib level 1)."""
    if isal_zlib is not None:
        return isal_zlib.compress(data, 1)
    return zlib.compress(data, 1)
