"""``POST /v1/completions``: a raw prompt continued, without memory or session.

Asynchronous like chat: in proxy mode the upstream's ``/completions`` events are passed
through as the bytes it sent (one pooled client, nothing decoded and re-encoded); a local
backend generates on a worker thread, so the event loop never waits on the model.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from engram_sdk.llm.base import BackendError, Chunk, SamplingOptions, Usage
from engram_sdk.llm.openai_async import AsyncUpstream, sse_events
from engram_sdk.server.errors import from_backend
from engram_sdk.server.event_stream import EventStream
from engram_sdk.server.guards import Slot
from engram_sdk.server.proxy import DONE_EVENT, SSE_HEADERS, open_upstream, streamed_body
from engram_sdk.server.schemas import CompletionRequest
from engram_sdk.server.shapes import chain, first_chunk, head, sampling, sse, usage_of
from engram_sdk.server.state import ServerState, state_of

router = APIRouter()


@router.post("/v1/completions", response_model=None)
async def completions(
    req: CompletionRequest, request: Request
) -> JSONResponse | StreamingResponse | EventStream:
    """A continuation of a raw prompt (no memory, no session)."""
    state = state_of(request)
    state.scope(request)
    state.check_model(req.model)
    options = sampling(req)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    slot = state.gate.take()
    try:
        if state.upstream is not None:
            return await _proxied(state, state.upstream, req, options, include_usage, slot)
        return await _local(state, req, options, include_usage, slot)
    except BaseException:
        slot.release()
        raise


def _upstream_body(
    upstream: AsyncUpstream, req: CompletionRequest, options: SamplingOptions, usage: bool
) -> dict[str, Any]:
    return streamed_body(upstream, {"prompt": req.prompt}, options.max_tokens, options, usage)


async def _proxied(
    state: ServerState,
    upstream: AsyncUpstream,
    req: CompletionRequest,
    options: SamplingOptions,
    include_usage: bool,
    slot: Slot,
) -> JSONResponse | EventStream:
    body = _upstream_body(upstream, req, options, include_usage or not req.stream)
    resp = await open_upstream(upstream, body, path="/completions")
    where = f"{upstream.base_url}/completions"
    if req.stream:
        return EventStream(_passed_through(resp, slot, where))
    parts: list[str] = []
    finish, usage = "stop", {}
    try:
        async for batch, _ in sse_events(resp, where=where):
            for payload in batch:
                event = json.loads(payload)
                if event.get("error"):
                    raise BackendError(f"{where} reported an error mid-reply")
                usage = event.get("usage") or usage
                for choice in event.get("choices") or ():
                    parts.append(choice.get("text") or "")
                    finish = choice.get("finish_reason") or finish
    except BackendError as exc:
        raise from_backend(exc) from exc
    except ValueError as exc:
        raise from_backend(BackendError(f"{where} sent a broken event: {exc}")) from exc
    finally:
        slot.release()
        await resp.aclose()
    text = "".join(parts)
    prompt = usage.get("prompt_tokens") or state.backend.count_tokens(req.prompt)
    completion = usage.get("completion_tokens") or state.backend.count_tokens(text)
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    counted = Usage(prompt, completion)
    return JSONResponse(
        {**head("text_completion", state), "choices": [choice], "usage": usage_of(counted)}
    )


async def _passed_through(resp: Any, slot: Slot, where: str) -> AsyncGenerator[bytes, None]:
    """The upstream's events as it sent them, ``[DONE]`` last (also after a failure)."""
    ended = False
    try:
        async for batch, done in sse_events(resp, where=where):
            out = [b"data: " + payload + b"\n\n" for payload in batch]
            if done:
                out.append(DONE_EVENT)
                ended = True
            if out:
                yield b"".join(out)
    except BackendError as exc:
        yield b"data: " + json.dumps(from_backend(exc).body()).encode() + b"\n\n"
    finally:
        slot.release()
        await resp.aclose()
    if not ended:
        yield DONE_EVENT


async def _local(
    state: ServerState,
    req: CompletionRequest,
    options: SamplingOptions,
    include_usage: bool,
    slot: Slot,
) -> JSONResponse | StreamingResponse:
    chunks = iter(state.backend.stream(prompt=req.prompt, options=options))
    first = await run_in_threadpool(first_chunk, chunks)
    start = head("text_completion", state)
    if req.stream:
        events = _text_events(slot, start, first, chunks, include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        rest = await run_in_threadpool(lambda: [first, *chunks])
    except BackendError as exc:
        raise from_backend(exc) from exc
    finally:
        slot.release()
    last = rest[-1]
    choice = {
        "index": 0,
        "text": "".join(c.text for c in rest),
        "finish_reason": last.finish_reason or "stop",
        "logprobs": None,
    }
    return JSONResponse({**start, "choices": [choice], "usage": usage_of(last.usage or Usage())})


def _text_events(
    slot: Slot, start: dict[str, Any], first: Chunk, chunks: Iterator[Chunk], include_usage: bool
) -> Iterator[str]:
    """SSE events of a local generation (run by Starlette on a worker thread)."""
    usage, finish = Usage(), "stop"
    try:
        for chunk in chain(first, chunks):
            finish = chunk.finish_reason or finish
            usage = chunk.usage or usage
            if chunk.text:
                choice = {"index": 0, "text": chunk.text, "finish_reason": None, "logprobs": None}
                yield sse({**start, "choices": [choice]})
        choice = {"index": 0, "text": "", "finish_reason": finish, "logprobs": None}
        yield sse({**start, "choices": [choice]})
        if include_usage:
            yield sse({**start, "choices": [], "usage": usage_of(usage)})
    except BackendError as exc:
        yield sse(from_backend(exc).body())
    finally:
        slot.release()
    yield "data: [DONE]\n\n"
