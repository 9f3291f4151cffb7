"""Request and response bodies of ``engram serve`` (OpenAI's shapes, plus the memory API)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SERVER_FORMAT_VERSION = 1


class ChatMessage(BaseModel):
    """One message; content parts (``[{"type": "text", "text": ...}]``) are joined as text."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class StreamOptions(BaseModel):
    """``stream_options``."""

    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class SamplingFields(BaseModel):
    """Fields chat and completions share (unknown fields are accepted and ignored, as clients
    such as LangChain and LiteLLM send extras)."""

    model_config = ConfigDict(extra="allow")
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)
    user: str | None = None
    session_id: str | None = None
    metadata: dict[str, Any] | None = None

    def stops(self) -> tuple[str, ...]:
        """``stop`` as a tuple."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(SamplingFields):
    """``POST /v1/chat/completions``; ``memory: false`` turns recall off for one request."""

    messages: list[ChatMessage] = Field(min_length=1)
    memory: bool = True


class CompletionRequest(SamplingFields):
    """``POST /v1/completions`` (a raw prompt; no memory, no session)."""

    prompt: str


class AddRequest(BaseModel):
    """``POST /v1/memory/add``."""

    text: str
    source: str = "text"
    scope: str | None = None
    metadata: dict[str, Any] | None = None


class AddResponse(BaseModel):
    """Passage ids written."""

    passage_ids: list[int]


class IngestRequest(BaseModel):
    """``POST /v1/memory/ingest``: a path under one of the server's ingest roots."""

    path: str
    scope: str | None = None


class SearchRequest(BaseModel):
    """``POST /v1/memory/search``; ``match: "words"`` ranks by the query's words without
    looking for the phrase (:meth:`engram_sdk.memory.Memory.search`)."""

    query: str
    k: int = Field(default=10, ge=1, le=200)
    scope: str | None = None
    match: Literal["phrase", "words"] = "phrase"


class ContextRequest(BaseModel):
    """``POST /v1/memory/context``."""

    query: str
    max_tokens: int = Field(default=1000, ge=1, le=100_000)
    scope: str | None = None


class SessionSummary(BaseModel):
    """A session in a listing."""

    id: str
    scope: str
    turns: int
    created: float


class TurnOut(BaseModel):
    """A stored turn."""

    seq: int
    role: str
    content: str
    timestamp: float
    metadata: dict[str, Any] = Field(default_factory=dict)


class SessionDetail(SessionSummary):
    """A session with its turns."""

    messages: list[TurnOut]


class DeleteResponse(BaseModel):
    """What a delete removed."""

    deleted_turns: int


class ErrorDetail(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """``{"error": {...}}``."""

    error: ErrorDetail


class Health(BaseModel):
    """``GET /health``."""

    status: Literal["ok"] = "ok"
    format_version: int = SERVER_FORMAT_VERSION
    model: str
    mode: Literal["local", "proxy"]
    context_length: int
