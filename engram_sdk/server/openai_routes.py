"""``/v1/models`` and ``/v1/chat/completions`` in OpenAI's shapes.

Chat goes through :func:`engram_sdk.llm.augmented_turn` (memory on unless the body says
``"memory": false``); the session is the ``X-Session-ID`` header, else ``session_id``, else
``metadata.session_id``, else ``user``. ``/v1/completions``: :mod:`engram_sdk.server.completions`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from engram_sdk.llm.augment import AugmentedTurn
from engram_sdk.llm.base import BackendError, Chunk, Message, SamplingOptions
from engram_sdk.server.errors import APIError, from_backend
from engram_sdk.server.event_stream import EventStream
from engram_sdk.server.guards import Slot
from engram_sdk.server.proxy import (
    SSE_HEADERS,
    open_upstream,
    stream_reply,
    upstream_body,
    whole_reply,
)
from engram_sdk.server.schemas import ChatCompletionRequest
from engram_sdk.server.shapes import chain, first_chunk, head, sampling, sse, usage_of
from engram_sdk.server.state import SESSION_HEADER, ServerState, state_of
from engram_sdk.server.turns import PreparedTurn, local_turn, prepare_turn

router = APIRouter()


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


def session_id_of(headers: Mapping[str, str], req: ChatCompletionRequest) -> str | None:
    """Header, then ``session_id``, then ``metadata.session_id``, then ``user``."""
    meta = req.metadata or {}
    found = headers.get(SESSION_HEADER) or req.session_id or meta.get("session_id")
    return str(found) if found else req.user


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    req: ChatCompletionRequest, request: Request
) -> JSONResponse | StreamingResponse | EventStream:
    """A chat reply with recalled passages in the prompt; the turn is stored in the session.

    Store reads, recall and the local model run off the event loop; in proxy mode the
    upstream's events are passed through (:mod:`engram_sdk.server.proxy`). Requests reach
    :func:`chat_reply` through :mod:`engram_sdk.server.fast_chat` first; this route gives
    the OpenAPI page its schema.
    """
    return await chat_reply(state_of(request), req, request.headers)


async def chat_reply(
    state: ServerState, req: ChatCompletionRequest, headers: Mapping[str, str]
) -> JSONResponse | StreamingResponse | EventStream:
    """The reply to a validated chat request with these (case-insensitive) ``headers``."""
    scope = state.scope_of(headers, (req.metadata or {}).get("scope"))
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
            session_id=session_id_of(headers, req),
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
    first = await run_in_threadpool(first_chunk, chunks)
    meta = prepared.meta()
    start = head("chat.completion", state)
    if stream:
        body = _chat_events(slot, start, first, chunks, turn, include_usage, meta)
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
    reply = {**start, "choices": [choice], "usage": usage_of(turn.usage), "engram": meta}
    return JSONResponse(reply)


def _chat_events(
    slot: Slot,
    start: dict[str, Any],
    first: Chunk,
    chunks: Iterator[Chunk],
    turn: AugmentedTurn,
    include_usage: bool,
    meta: dict[str, Any],
) -> Iterator[str]:
    start = {**start, "object": "chat.completion.chunk"}

    def event(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return sse({**start, "choices": [choice], **extra})

    try:
        yield event({"role": "assistant", "content": ""}, None)
        for chunk in chain(first, chunks):
            if chunk.text:
                yield event({"content": chunk.text}, None)
        yield event({}, turn.finish_reason or "stop", engram=meta)
        if include_usage:
            yield sse({**start, "choices": [], "usage": usage_of(turn.usage)})
    except BackendError as exc:
        yield sse(from_backend(exc).body())
    finally:
        slot.release()
    yield "data: [DONE]\n\n"
