"""An SSE response that sends each batch of events as it comes, with nothing in between.

Starlette's ``StreamingResponse`` runs the body in an anyio task group beside a task that
waits for the client to go away, on every request; for a proxied reply that machinery cost
more CPU than forwarding the events. :class:`EventStream` sends from the handler's own task
and learns of a disconnect from one plain asyncio task reading ``receive`` (checked between
batches): once the client is gone, the source is closed. A batch ending with
``data: [DONE]`` ends the response in the same write; the source is still read to its end
(the proxy stores the turn and gives the upstream connection back to its pool).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStream(Response):
    """``text/event-stream`` from an async generator of ready-made event bytes."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None]) -> None:
        self.events = events
        self.status_code = 200
        self.background = None
        self.raw_headers = list(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            ended = False
            async for chunk in self.events:  # after the end, still read: the source may have work
                if gone.done():
                    break  # the client left: the source is closed (an upstream stops generating)
                if ended:
                    continue
                ended = chunk.endswith(DONE)  # the response's end goes in the same write
                await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
            if not ended and not gone.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
            await self.events.aclose()


async def _disconnected(receive: Receive) -> None:
    """Returns once the client has gone (the request body is already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass
