"""Proxy mode: the planned prompt goes to the upstream, its SSE events come back untouched.

The upstream's events are forwarded as the bytes it sent, batched as they arrive; the proxy
reads each one only to collect the reply text for the session and to add the ``engram``
field (citations, session, scope, history kept) to the event that carries the
``finish_reason``, spliced in before its closing brace. The session is written before the
closing ``data: [DONE]``, so a client's next turn always sees this one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

from engram_sdk.llm.base import BackendError, SamplingOptions
from engram_sdk.llm.openai_async import AsyncUpstream, StreamedReply, sse_events
from engram_sdk.server.errors import from_backend
from engram_sdk.server.event_stream import EventStream
from engram_sdk.server.guards import Slot
from engram_sdk.server.state import ServerState
from engram_sdk.server.turns import PreparedTurn, store_reply

DONE_EVENT = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class _Reply:
    """What the proxy learns from the events it forwards."""

    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    error: bool = False

    def read(self, event: dict[str, Any]) -> bool:
        """Note one event; True when it carries a ``finish_reason``."""
        if event.get("error"):
            self.error = True
        if event.get("usage"):
            self.usage = event["usage"]
        finished = False
        for choice in event.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                self.parts.append(text)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                finished = True
        return finished


def upstream_body(
    upstream: AsyncUpstream, turn: PreparedTurn, options: SamplingOptions, include_usage: bool
) -> dict[str, Any]:
    """The chat request the upstream gets: the planned prompt, always streamed."""
    content = {"messages": turn.plan.messages}
    return streamed_body(upstream, content, turn.plan.max_tokens, options, include_usage)


def streamed_body(
    upstream: AsyncUpstream,
    content: dict[str, Any],
    max_tokens: int | None,
    options: SamplingOptions,
    include_usage: bool,
) -> dict[str, Any]:
    """An upstream request body: ``content`` (messages or prompt) and the sampling options,
    always streamed; usage asked for when the client asked for it."""
    body: dict[str, Any] = {
        "model": upstream.model,
        **content,
        "max_tokens": max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "stream": True,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    if options.stop:
        body["stop"] = list(options.stop)
    return body


async def open_upstream(
    upstream: AsyncUpstream, body: dict[str, Any], *, path: str = "/chat/completions"
) -> StreamedReply:
    """The upstream's 200 streaming response at ``path``, or the HTTP error the client
    should get."""
    try:
        return await upstream.open(path, body)
    except BackendError as exc:
        raise from_backend(exc) from exc


def _splice(payload: bytes, extra: bytes) -> bytes:
    """``payload`` (a JSON object) with ``"engram": extra`` added before its closing brace."""
    body = payload.rstrip()
    if not body.endswith(b"}"):
        return payload
    return body[:-1] + b', "engram": ' + extra + b"}"


async def _events(
    state: ServerState, turn: PreparedTurn, resp: StreamedReply, slot: Slot
) -> AsyncGenerator[bytes, None]:
    reply, meta = _Reply(), json.dumps(turn.meta()).encode()
    where = f"{state.upstream.base_url if state.upstream else ''}/chat/completions"
    ended = False
    try:
        async for batch, done in sse_events(resp, where=where):
            out = []
            for payload in batch:
                if reply.read(json.loads(payload)):
                    payload = _splice(payload, meta)
                out.append(b"data: " + payload + b"\n\n")
            if done and turn.session is None:  # nothing to store: end in the same write
                out.append(DONE_EVENT)
                ended = True
            if out:
                yield b"".join(out)
        if not reply.error and turn.session is not None:
            await store_reply(state, turn, "".join(reply.parts), reply.finish_reason)
    except (BackendError, ValueError) as exc:
        failure = exc if isinstance(exc, BackendError) else BackendError(f"{where}: {exc}")
        yield b"data: " + json.dumps(from_backend(failure).body()).encode() + b"\n\n"
    finally:
        slot.release()
        await resp.aclose()
    if not ended:
        yield DONE_EVENT


def stream_reply(
    state: ServerState, turn: PreparedTurn, resp: StreamedReply, slot: Slot
) -> EventStream:
    """The upstream's events, passed through (see the module docs)."""
    return EventStream(_events(state, turn, resp, slot))


async def whole_reply(state: ServerState, turn: PreparedTurn, resp: StreamedReply) -> JSONResponse:
    """The upstream's streamed reply gathered into one ``chat.completion``."""
    reply = _Reply()
    where = f"{state.upstream.base_url if state.upstream else ''}/chat/completions"
    try:
        async for batch, _ in sse_events(resp, where=where):
            for payload in batch:
                reply.read(json.loads(payload))
    except BackendError as exc:
        raise from_backend(exc) from exc
    except ValueError as exc:
        raise from_backend(BackendError(f"{where} sent a broken event: {exc}")) from exc
    finally:
        await resp.aclose()
    if reply.error:
        raise from_backend(BackendError(f"{where} reported an error mid-reply"))
    text = "".join(reply.parts)
    if turn.session is not None:
        await store_reply(state, turn, text, reply.finish_reason)
    usage = reply.usage or {}
    prompt = usage.get("prompt_tokens", turn.plan.prompt_tokens)
    completion = usage.get("completion_tokens") or state.backend.count_tokens(text)
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": state.backend.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length" if reply.finish_reason == "length" else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        "engram": turn.meta(),
    }
    return JSONResponse(body)
