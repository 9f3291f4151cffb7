"""OpenAI's reply shapes shared by the chat and completions routes: ids, usage, SSE events,
sampling options from a request, and the first chunk of a local generation."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from engram_sdk.llm.base import BackendError, Chunk, SamplingOptions, Usage
from engram_sdk.server.errors import APIError, from_backend
from engram_sdk.server.schemas import SamplingFields
from engram_sdk.server.state import ServerState

DEFAULT_MAX_TOKENS = 256


def sampling(req: SamplingFields) -> SamplingOptions:
    """Sampling options of a request (400 on invalid values)."""
    try:
        return SamplingOptions(
            max_tokens=req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=req.temperature,
            top_p=req.top_p,
            stop=req.stops(),
        )
    except ValueError as exc:
        raise APIError(400, str(exc), code="invalid_request") from exc


def first_chunk(chunks: Iterator[Chunk]) -> Chunk:
    """The first chunk, so backend failures become HTTP errors before any byte is sent."""
    try:
        return next(chunks)
    except BackendError as exc:
        raise from_backend(exc) from exc
    except StopIteration:
        return Chunk(finish_reason="stop", usage=Usage())


def head(kind: str, state: ServerState) -> dict[str, Any]:
    """``id``, ``object``, ``created`` and ``model`` of a reply of ``kind``."""
    prefix = "chatcmpl" if kind.startswith("chat.") else "cmpl"
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": state.backend.name,
    }


def usage_of(u: Usage) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


def sse(obj: dict[str, Any]) -> str:
    """One server-sent event carrying ``obj``."""
    return f"data: {json.dumps(obj)}\n\n"


def chain(first: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    """``first`` then ``rest``."""
    yield first
    yield from rest
