"""The Engram module: gated N-gram memory layers and the tables behind them."""

from engram_sdk.engram.module import Engram, ShortConv
from engram_sdk.engram.table import EmbeddingTable, EngramTable

__all__ = ["EmbeddingTable", "Engram", "EngramTable", "ShortConv"]
