"""engram_sdk.evals: needle-in-a-haystack and RULER for any model, offline and resumable.

>>> from engram_sdk.evals import OracleAdapter, run_ruler
>>> report = run_ruler(OracleAdapter(), ["niah_single_1", "vt"], [4096], 2, "out", progress=False)
>>> report.average[4096]
100.0
"""

from engram_sdk.evals.adapters import (
    Adapter,
    Answer,
    CallableAdapter,
    EmptyAdapter,
    EngramModelAdapter,
    EvalError,
    HFAdapter,
    OracleAdapter,
)
from engram_sdk.evals.api import niah_samples, ruler_samples, run_niah, run_ruler
from engram_sdk.evals.haystacks import EssayHaystack, FolderHaystack, NoiseHaystack, get_haystack
from engram_sdk.evals.length import (
    HFCounter,
    TiktokenCounter,
    TokenCounter,
    get_counter,
    tolerance_for,
)
from engram_sdk.evals.memory_adapter import MemoryAdapter
from engram_sdk.evals.openai_adapter import OpenAIAdapter
from engram_sdk.evals.report import EvalReport, build_report, markdown, write_report
from engram_sdk.evals.runner import Prediction, PredictionCache, run_samples
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.scoring import string_match_all, string_match_part
from engram_sdk.evals.tasks import RULER_TASKS, TASKS, TaskSpec, generate, get_task

__all__ = [
    "RULER_TASKS",
    "TASKS",
    "Adapter",
    "Answer",
    "CallableAdapter",
    "EmptyAdapter",
    "EngramModelAdapter",
    "EssayHaystack",
    "EvalError",
    "EvalReport",
    "FolderHaystack",
    "HFAdapter",
    "HFCounter",
    "MemoryAdapter",
    "NoiseHaystack",
    "OpenAIAdapter",
    "OracleAdapter",
    "Prediction",
    "PredictionCache",
    "Sample",
    "TaskSpec",
    "TiktokenCounter",
    "TokenCounter",
    "build_report",
    "generate",
    "get_counter",
    "get_haystack",
    "get_task",
    "markdown",
    "niah_samples",
    "ruler_samples",
    "run_niah",
    "run_ruler",
    "run_samples",
    "string_match_all",
    "string_match_part",
    "tolerance_for",
    "write_report",
]
