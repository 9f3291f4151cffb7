"""The generation interface every language model backend implements.

A backend turns chat messages (or a raw prompt) into text, streamed as :class:`Chunk` deltas
that end with one chunk carrying the ``finish_reason`` and token :class:`Usage`. Callers know
the model's window (:attr:`Backend.context_length`) and can count tokens with the model's own
tokenizer (:meth:`Backend.count_tokens`) and render messages with its chat template
(:meth:`Backend.render`), so they can fit a conversation into the window before calling.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from engram_sdk.errors import EngramError, InputError

FinishReason = Literal["stop", "length"]


class Message(TypedDict):
    """One chat message, as OpenAI's API writes it."""

    role: str
    content: str


class BackendError(EngramError):
    """A backend could not generate (an upstream error, a timeout, a model failure).

    ``status`` is the HTTP status an upstream answered (None for local failures) and
    ``retry_after`` its ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class Usage:
    """Token counts of one generation."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion."""
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Chunk:
    """A text delta; the last chunk of a generation has ``finish_reason`` and ``usage`` set."""

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass
class Completion:
    """A whole generation."""

    text: str
    finish_reason: FinishReason
    usage: Usage


@dataclass(frozen=True)
class SamplingOptions:
    """How to decode: greedy at ``temperature=0``; ``stop`` strings end the text (excluded)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise InputError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0 <= self.temperature <= 2:
            raise InputError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if len(self.stop) > 4 or any(not s for s in self.stop):
            raise InputError("stop takes at most 4 non-empty strings")


class Backend(abc.ABC):
    """A language model: the one interface chat, the server, MCP and the evals use."""

    #: name reported to clients (``/v1/models``, eval reports)
    name: str
    #: whether the model was trained to chat (has a chat template); base models read prompts
    is_chat: bool = True

    @property
    @abc.abstractmethod
    def context_length(self) -> int:
        """Tokens the model reads at once (prompt plus reply)."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's own tokenizer (an estimate for remote models)."""

    @abc.abstractmethod
    def render(self, messages: Sequence[Message]) -> str:
        """The prompt the model reads for ``messages``: its chat template, generation prompt open."""

    @abc.abstractmethod
    def _stream_prompt(self, prompt: str, options: SamplingOptions) -> Iterator[Chunk]:
        """Stream a continuation of the raw ``prompt`` (the last chunk has usage)."""

    def _stream_chat(
        self, messages: Sequence[Message], options: SamplingOptions
    ) -> Iterator[Chunk]:
        """Stream a reply to ``messages``; local models render their template and continue it."""
        return self._stream_prompt(self.render(messages), options)

    def stream(
        self,
        messages: Sequence[Message] | None = None,
        *,
        prompt: str | None = None,
        options: SamplingOptions | None = None,
    ) -> Iterator[Chunk]:
        """Text deltas of a reply to ``messages`` (or a continuation of ``prompt``)."""
        if (messages is None) == (prompt is None):
            raise InputError("give exactly one of messages or prompt")
        options = options or SamplingOptions()
        if messages is not None:
            check_messages(messages)
            return self._stream_chat(messages, options)
        return self._stream_prompt(prompt or "", options)

    def generate(
        self,
        messages: Sequence[Message] | None = None,
        *,
        prompt: str | None = None,
        options: SamplingOptions | None = None,
    ) -> Completion:
        """The whole reply (see :meth:`stream`)."""
        parts: list[str] = []
        finish: FinishReason = "stop"
        usage = Usage()
        for chunk in self.stream(messages, prompt=prompt, options=options):
            parts.append(chunk.text)
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
            if chunk.usage is not None:
                usage = chunk.usage
        return Completion(text="".join(parts), finish_reason=finish, usage=usage)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (connections, model memory)."""


def check_messages(messages: Sequence[Message]) -> None:
    """Messages must be a non-empty list of {role, content: str}."""
    if not messages:
        raise InputError("messages must not be empty")
    for i, m in enumerate(messages):
        if m.get("role") not in ("system", "user", "assistant", "tool", "developer"):
            raise InputError(f"messages[{i}].role must be system, user or assistant")
        if not isinstance(m.get("content"), str):
            raise InputError(f"messages[{i}].content must be a string")


class StopScanner:
    """Cuts streamed text at the first stop string, holding back a possible partial match."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Text safe to emit now; sets :attr:`stopped` when a stop string appeared."""
        if self.stopped:
            return ""
        self.pending += text
        cut = min((i for s in self.stops if (i := self.pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            out, self.pending, self.stopped = self.pending[:cut], "", True
            return out
        if not self.stops:
            out, self.pending = self.pending, ""
            return out
        safe = max(0, len(self.pending) - self.keep)
        out, self.pending = self.pending[:safe], self.pending[safe:]
        return out

    def flush(self) -> str:
        """What is still held back once the model has finished."""
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out
