"""Stored passage texts stay in the zlib format whatever compresses them (ISA-L or zlib):
the standard library's ``zlib.decompress`` is the oracle, as every reader and every earlier
release use it."""

import zlib

from hypothesis import given
from hypothesis import strategies as st

from engram_sdk.memory import deflate


@given(st.binary(max_size=5000) | st.text(max_size=3000).map(str.encode))
def test_compressed_texts_are_read_back_by_zlib(data: bytes) -> None:
    assert zlib.decompress(deflate.compress(data)) == data
