"""``/v1/models``, ``/v1/chat/completions`` and ``/v1/completions`` in OpenAI's shapes.

Chat goes through :func:`engram_sdk.llm.augmented_turn` (memory on unless the body says
``"memory": false``); the session is the ``X-Session-ID`` header, else ``session_id``, else
``metadata.session_id``, else ``user``. Completions continue a raw prompt, without memory.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from engram_sdk.llm.augment import AugmentedTurn
from engram_sdk.llm.base import BackendError, Chunk, Message, SamplingOptions, Usage
from engram_sdk.server.errors import APIError, from_backend
from engram_sdk.server.guards import Slot
from engram_sdk.server.proxy import (
    SSE_HEADERS,
    open_upstream,
    stream_reply,
    upstream_body,
    whole_reply,
)
from engram_sdk.server.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields
from engram_sdk.server.state import SESSION_HEADER, ServerState, state_of
from engram_sdk.server.turns import PreparedTurn, local_turn, prepare_turn

router = APIRouter()
DEFAULT_MAX_TOKENS = 256


@router.get("/v1/models")
def list_models(request: Request) -> dict[str, Any]:
    """The one model this server serves."""
    state = state_of(request)
    state.scope(request)
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "engram",
                "context_length": state.backend.context_length,
            }
            for name in state.model_ids
        ],
    }


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


def session_id_of(request: Request, req: ChatCompletionRequest) -> str | None:
    """Header, then ``session_id``, then ``metadata.session_id``, then ``user``."""
    meta = req.metadata or {}
    found = request.headers.get(SESSION_HEADER) or req.session_id or meta.get("session_id")
    return str(found) if found else req.user


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    req: ChatCompletionRequest, request: Request
) -> JSONResponse | StreamingResponse:
    """A chat reply with recalled passages in the prompt; the turn is stored in the session.

    Store reads, recall and the local model run off the event loop; in proxy mode the
    upstream's events are passed through (:mod:`engram_sdk.server.proxy`).
    """
    state = state_of(request)
    scope = state.scope(request, (req.metadata or {}).get("scope"))
    state.check_model(req.model)
    messages: list[Message] = [{"role": m.role, "content": m.text()} for m in req.messages]
    if messages[-1]["role"] != "user":
        raise APIError(400, "the last message must have role 'user'", param="messages")
    options = sampling(req)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    slot = state.gate.take()
    try:
        turn = await prepare_turn(
            state,
            session_id=session_id_of(request, req),
            scope=scope,
            messages=messages,
            options=options,
            use_memory=req.memory,
        )
        if state.upstream is not None:
            body = upstream_body(state.upstream, turn, options, include_usage or not req.stream)
            resp = await open_upstream(state.upstream, body)
            if req.stream:
                return stream_reply(state, turn, resp, slot)
            reply = await whole_reply(state, turn, resp)
            slot.release()
            return reply
        return await _local_chat(state, turn, options, req.stream, include_usage, slot)
    except BaseException:
        slot.release()
        raise


async def _local_chat(
    state: ServerState,
    prepared: PreparedTurn,
    options: SamplingOptions,
    stream: bool,
    include_usage: bool,
    slot: Slot,
) -> JSONResponse | StreamingResponse:
    turn = local_turn(state, prepared, options)
    chunks = iter(turn)
    first = await run_in_threadpool(_first, chunks)
    meta = prepared.meta()
    head = _head("chat.completion", state)
    if stream:
        body = _chat_events(slot, head, first, chunks, turn, include_usage, meta)
        return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        rest = await run_in_threadpool(lambda: [first, *chunks])
    except BackendError as exc:
        raise from_backend(exc) from exc
    finally:
        slot.release()
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "".join(c.text for c in rest)},
        "finish_reason": turn.finish_reason or "stop",
        "logprobs": None,
    }
    return JSONResponse({**head, "choices": [choice], "usage": _usage(turn.usage), "engram": meta})


@router.post("/v1/completions", response_model=None)
def completions(req: CompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
    """A continuation of a raw prompt (no memory, no session)."""
    state = state_of(request)
    state.scope(request)
    state.check_model(req.model)
    options = sampling(req)
    state.gate.acquire()
    try:
        chunks = iter(state.backend.stream(prompt=req.prompt, options=options))
        first = _first(chunks)
    except BaseException:
        state.gate.release()
        raise
    head = _head("text_completion", state)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(
            _text_events(state, head, first, chunks, include_usage), media_type="text/event-stream"
        )
    try:
        rest = [first, *chunks]
    except BackendError as exc:
        raise from_backend(exc) from exc
    finally:
        state.gate.release()
    last = rest[-1]
    choice = {
        "index": 0,
        "text": "".join(c.text for c in rest),
        "finish_reason": last.finish_reason or "stop",
        "logprobs": None,
    }
    return JSONResponse({**head, "choices": [choice], "usage": _usage(last.usage or Usage())})


def _first(chunks: Iterator[Chunk]) -> Chunk:
    """The first chunk, so upstream failures become HTTP errors before any byte is sent."""
    try:
        return next(chunks)
    except BackendError as exc:
        raise from_backend(exc) from exc
    except StopIteration:
        return Chunk(finish_reason="stop", usage=Usage())


def _head(kind: str, state: ServerState) -> dict[str, Any]:
    prefix = "chatcmpl" if kind == "chat.completion" else "cmpl"
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": state.backend.name,
    }


def _usage(u: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def _chat_events(
    slot: Slot,
    head: dict[str, Any],
    first: Chunk,
    chunks: Iterator[Chunk],
    turn: AugmentedTurn,
    include_usage: bool,
    meta: dict[str, Any],
) -> Iterator[str]:
    head = {**head, "object": "chat.completion.chunk"}

    def event(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _sse({**head, "choices": [choice], **extra})

    try:
        yield event({"role": "assistant", "content": ""}, None)
        for chunk in _chain(first, chunks):
            if chunk.text:
                yield event({"content": chunk.text}, None)
        yield event({}, turn.finish_reason or "stop", engram=meta)
        if include_usage:
            yield _sse({**head, "choices": [], "usage": _usage(turn.usage)})
    except BackendError as exc:
        yield _sse(from_backend(exc).body())
    finally:
        slot.release()
    yield "data: [DONE]\n\n"


def _text_events(
    state: ServerState,
    head: dict[str, Any],
    first: Chunk,
    chunks: Iterator[Chunk],
    include_usage: bool,
) -> Iterator[str]:
    usage, finish = Usage(), "stop"
    try:
        for chunk in _chain(first, chunks):
            finish = chunk.finish_reason or finish
            usage = chunk.usage or usage
            if chunk.text:
                choice = {"index": 0, "text": chunk.text, "finish_reason": None, "logprobs": None}
                yield _sse({**head, "choices": [choice]})
        choice = {"index": 0, "text": "", "finish_reason": finish, "logprobs": None}
        yield _sse({**head, "choices": [choice]})
        if include_usage:
            yield _sse({**head, "choices": [], "usage": _usage(usage)})
    except BackendError as exc:
        yield _sse(from_backend(exc).body())
    finally:
        state.gate.release()
    yield "data: [DONE]\n\n"


def _chain(first: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield first
    yield from rest
