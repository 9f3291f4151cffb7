"""Model adapters: every model is measured through ``answer(sample) -> str | Answer``.

Built here: a Python callable, the oracle and empty references, and any generation backend
of :mod:`engram_sdk.llm` (the built-in engram checkpoint, Hugging Face ``transformers``
models, GGUF files through llama.cpp) through :class:`BackendAdapter`. The
OpenAI-compatible HTTP client lives in :mod:`engram_sdk.evals.openai_adapter` and the
memory pipeline in :mod:`engram_sdk.evals.memory_adapter`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from engram_sdk.evals.length import HFCounter, TiktokenCounter, TokenCounter
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import EngramError, InputError

if TYPE_CHECKING:
    from engram_sdk.llm import Backend


class EvalError(EngramError):
    """A model could not answer (server error after retries, bad response, ...)."""


@dataclass
class Answer:
    """A prediction with optional extra numbers (e.g. the memory pipeline's recall)."""

    text: str
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """What the runner needs from a model."""

    name: str
    concurrency: int

    def answer(self, sample: Sample) -> str | Answer: ...


def counter_of(adapter: Any) -> TokenCounter | None:
    """The token counter a model declares (its own tokenizer), if any."""
    return getattr(adapter, "token_counter", None)


class CallableAdapter:
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


class EmptyAdapter:
    """Answers nothing: every score is 0 (a floor for sanity checks)."""

    name = "empty"
    concurrency = 1

    def answer(self, sample: Sample) -> str:
        return ""


from engram_sdk.evals.oracle import OracleAdapter  # noqa: E402,F401  (moved; re-exported)


class BackendCounter:
    """A :class:`TokenCounter` over a generation backend's own tokenizer."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = f"backend:{backend.name}"

    def count(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.backend.count_tokens(t) for t in texts]


class BackendAdapter:
    """Any :class:`engram_sdk.llm.Backend` as an eval model, greedy decoding.

    Chat models read their chat template around the input with the answer prefix opening the
    assistant turn (as RULER runs chat models; the prefix's leading whitespace is dropped,
    since the template already ends the line); base models read ``input + answer_prefix``
    (BOS added by the backend when the tokenizer has one).
    """

    def __init__(self, backend: Backend, name: str | None = None, concurrency: int = 1) -> None:
        self.backend = backend
        self.name = name or backend.name
        self.concurrency = concurrency
        self.token_counter: TokenCounter = BackendCounter(backend)
        self.max_context = backend.context_length
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
        return head + sample.answer_prefix.lstrip()

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


class EngramModelAdapter(BackendAdapter):
    """The built-in engram model from a checkpoint folder (greedy decoding)."""

    def __init__(self, checkpoint: str, device: str = "cpu", name: str | None = None) -> None:
        from engram_sdk.llm.builtin import EngramModelBackend

        backend = EngramModelBackend(checkpoint, device=device)
        super().__init__(backend, name=name or f"engram:{checkpoint}")
        self.model = backend.model
        self.tok = backend.tokenizer
        self.token_counter = TiktokenCounter(backend.config.tokenizer or "cl100k_base")
