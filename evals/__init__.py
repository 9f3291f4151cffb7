"""engram_sdk.evals: needle-in-a-haystack and RULER for any model, offline and resumable.

>>> from engram_sdk.evals import OracleAdapter, run_ruler
>>> report = run_ruler(OracleAdapter(), tasks=["niah_single_1", "vt"], lengths=[4096], n_samples=2,
...                    out_dir="out", progress=False)
>>> report.average[4096]
100.0
"""

from engram_sdk.evals.adapters import (
    Adapter,
    Answer,
    BackendAdapter,
    BaseAdapter,
    CallableAdapter,
    EmptyAdapter,
    EngramModelAdapter,
    EvalError,
    HFAdapter,
    LlamaCppAdapter,
)
from engram_sdk.evals.api import niah_samples, ruler_samples, run, run_niah, run_ruler
from engram_sdk.evals.config import RunConfig, build_config
from engram_sdk.evals.extractive import ExtractiveAdapter
from engram_sdk.evals.haystacks import EssayHaystack, FolderHaystack, NoiseHaystack, get_haystack
from engram_sdk.evals.judge import Judge
from engram_sdk.evals.length import (
    HFCounter,
    TiktokenCounter,
    TokenCounter,
    get_counter,
    tolerance_for,
)
from engram_sdk.evals.memo_counter import MemoCounter
from engram_sdk.evals.memory_adapter import MemoryAdapter
from engram_sdk.evals.openai_adapter import OpenAIAdapter
from engram_sdk.evals.oracle import OracleAdapter
from engram_sdk.evals.process_pool import ProcessPoolAdapter
from engram_sdk.evals.report import EvalReport, build_report, markdown, write_report
from engram_sdk.evals.runner import Prediction, PredictionCache, run_samples
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.scoring import string_match_all, string_match_part
from engram_sdk.evals.spacing import spaced_depths, spaced_lengths
from engram_sdk.evals.taskconfig import TaskConfig
from engram_sdk.evals.tasks import RULER_TASKS, TASKS, TaskSpec, generate, generate_one, get_task

__all__ = [
    "RULER_TASKS",
    "TASKS",
    "Adapter",
    "Answer",
    "BackendAdapter",
    "BaseAdapter",
    "CallableAdapter",
    "EmptyAdapter",
    "EngramModelAdapter",
    "EssayHaystack",
    "EvalError",
    "EvalReport",
    "ExtractiveAdapter",
    "FolderHaystack",
    "HFAdapter",
    "HFCounter",
    "Judge",
    "LlamaCppAdapter",
    "MemoCounter",
    "MemoryAdapter",
    "NoiseHaystack",
    "OpenAIAdapter",
    "OracleAdapter",
    "Prediction",
    "PredictionCache",
    "ProcessPoolAdapter",
    "RunConfig",
    "Sample",
    "TaskConfig",
    "TaskSpec",
    "TiktokenCounter",
    "TokenCounter",
    "build_config",
    "build_report",
    "generate",
    "generate_one",
    "get_counter",
    "get_haystack",
    "get_task",
    "markdown",
    "niah_samples",
    "ruler_samples",
    "run",
    "run_niah",
    "run_ruler",
    "run_samples",
    "spaced_depths",
    "spaced_lengths",
    "string_match_all",
    "string_match_part",
    "tolerance_for",
    "write_report",
]
