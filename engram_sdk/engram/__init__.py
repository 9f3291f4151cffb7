"""The Engram module: gated N-gram memory layers and the tables they look rows up in."""

from engram_sdk.engram.module import Engram, EngramV41, ShortConv
from engram_sdk.engram.table import EmbeddingTable, EngramTable, MissingTable

__all__ = [
    "EmbeddingTable",
    "Engram",
    "EngramTable",
    "EngramV41",
    "MissingTable",
    "ShortConv",
]
