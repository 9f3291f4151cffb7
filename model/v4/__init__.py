"""DeepSeek-V4 and V4.1 (with Engram): configs, builders, HF mappings."""

from engram_sdk.model.v4.cache import V4Cache
from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.model import V4Transformer, build_v4
from engram_sdk.model.v4.v41_attention import V41Cache
from engram_sdk.model.v4.v41_config import V41Config
from engram_sdk.model.v4.v41_model import V41Transformer, build_v41

__all__ = [
    "V4Cache",
    "V4Config",
    "V4Transformer",
    "V41Cache",
    "V41Config",
    "V41Transformer",
    "build_v4",
    "build_v41",
]
