"""``POST /v1/chat/completions`` answered beside FastAPI, not through it.

Every request FastAPI routes passes its error, telemetry, body-limit and exit-stack
middleware, a route match over every path, a dependency solver, a JSON parse of the body and
then a pydantic validation of the parsed object. For the one route a proxy serves at rate
that was a third of the server's Python time per proxied request, more than forwarding the
reply. :class:`ChatFastPath` wraps the app: a chat request is read under the body limit,
parsed and validated in one step (pydantic from the bytes), and answered by the same
:func:`~engram_sdk.server.openai_routes.chat_reply` the FastAPI route calls (which stays for
the OpenAPI page); errors come back in the same OpenAI shapes. Every other request goes to
the app unchanged.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engram_sdk.errors import EngramError, InputError
from engram_sdk.llm.base import BackendError
from engram_sdk.server.errors import APIError, from_backend, invalid_request, too_large
from engram_sdk.server.openai_routes import chat_reply
from engram_sdk.server.schemas import ChatCompletionRequest
from engram_sdk.server.state import ServerState

CHAT_PATH = "/v1/chat/completions"


class ChatFastPath:
    """ASGI: chat requests straight to :func:`chat_reply`, the rest to ``app`` (made by
    :func:`~engram_sdk.server.app.create_app`)."""

    def __init__(self, app: FastAPI) -> None:
        self.app: ASGIApp = app
        self.state: ServerState = app.state.engram
        self.max_bytes = self.state.config.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHAT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            response = await self._answer(scope, receive)
        except APIError as exc:
            response = exc.response()
        except BackendError as exc:
            response = from_backend(exc).response()
        except InputError as exc:
            response = APIError(400, str(exc), code="invalid_request").response()
        except EngramError as exc:
            response = APIError(500, f"{type(exc).__name__}: {exc}", code="server_error").response()
        await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> Response:
        headers = Headers(scope=scope)
        body = await self._body(headers, receive)
        try:
            req = ChatCompletionRequest.model_validate_json(body)
        except ValidationError as exc:
            raise invalid_request(exc.errors(include_url=False)) from None
        return await chat_reply(self.state, req, headers)

    async def _body(self, headers: Headers, receive: Receive) -> bytes:
        """The request body, or 413 past the limit (declared or as it arrives)."""
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise too_large(self.max_bytes)
        parts: list[bytes] = []
        seen, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            part = message.get("body", b"")
            seen += len(part)
            if seen > self.max_bytes:
                raise too_large(self.max_bytes)
            parts.append(part)
            more = message.get("more_body", False)
        return parts[0] if len(parts) == 1 else b"".join(parts)
