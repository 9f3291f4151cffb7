"""DeepSeek-V4 (and V4.1 with Engram): config, builder, HF mapping."""

from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.model import V4Transformer, build_v4

__all__ = ["V4Config", "V4Transformer", "build_v4"]
