"""The Engram module: gated N-gram memory layers and the tables behind them."""

from engram_sdk.engram.module import Engram, EngramV41, ShortConv
from engram_sdk.engram.table import BatchAddresses, EmbeddingTable, EngramTable, LayerAddresses

__all__ = [
    "BatchAddresses",
    "EmbeddingTable",
    "Engram",
    "EngramTable",
    "EngramV41",
    "LayerAddresses",
    "ShortConv",
]
