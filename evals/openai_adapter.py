"""An OpenAI-compatible HTTP endpoint (``/v1/chat/completions`` or ``/v1/completions``).

A thin adapter over :class:`engram_sdk.llm.openai_http.OpenAIBackend` (one HTTP client for
the whole SDK). The key comes from an environment variable; requests run ``concurrency`` at
a time (the runner's thread pool); 429 and 5xx answers and connection errors are retried
with exponential backoff (``Retry-After`` honoured); other errors fail at once with the
server's message.
"""

from __future__ import annotations

from engram_sdk.evals.length import TokenCounter
from engram_sdk.evals.protocol import BaseAdapter, EvalError
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import InputError
from engram_sdk.llm.base import BackendError, SamplingOptions
from engram_sdk.llm.openai_http import RETRY_STATUS, OpenAIBackend

__all__ = ["RETRY_STATUS", "OpenAIAdapter"]


class OpenAIAdapter(BaseAdapter):
    """Chat or completions over HTTP; greedy (temperature 0) with ``max_tokens`` from the task."""

    def __init__(
        self,
        model: str,
        base_url: str = "http://localhost:8000/v1",
        mode: str = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout_s: float = 300.0,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        max_context: int | None = None,
        token_counter: TokenCounter | None = None,
        name: str | None = None,
    ) -> None:
        if mode not in ("chat", "completions"):
            raise InputError(f"mode must be 'chat' or 'completions', got {mode!r}")
        if concurrency < 1:
            raise InputError("concurrency must be >= 1")
        self.backend = OpenAIBackend(
            base_url,
            model=model,
            api_key_env=api_key_env,
            context_length=max_context or 8192,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
        )
        self.model, self.mode = model, mode
        self.concurrency = concurrency
        self.max_context = max_context
        self.token_counter = token_counter
        self.name = name or f"openai-{mode}:{model}"

    @property
    def retries(self) -> int:
        """How many retries happened (for reports and tests)."""
        return self.backend.retries

    def answer(self, sample: Sample) -> str:
        options = SamplingOptions(max_tokens=sample.max_new_tokens, temperature=0.0)
        try:
            if self.mode == "chat":
                # no assistant prefill in the chat API: the answer prefix ends the user turn
                content = sample.input + sample.answer_prefix
                out = self.backend.generate([{"role": "user", "content": content}], options=options)
            else:
                out = self.backend.generate(prompt=sample.prompt, options=options)
        except BackendError as exc:
            raise EvalError(str(exc)) from exc
        return out.text
