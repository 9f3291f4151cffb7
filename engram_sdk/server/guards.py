"""Request guards: the body size limit, API keys and scopes, the bound on generations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engram_sdk.server.config import KeyGrant
from engram_sdk.server.errors import APIError, too_large


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` (declared or streamed) is answered 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        response = too_large(self.max_bytes).response()
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


class Auth:
    """Keys → scopes. Without keys every scope is open; with keys a request needs
    ``Authorization: Bearer KEY`` and may use only that key's scopes."""

    def __init__(self, grants: list[KeyGrant], default_scope: str) -> None:
        self.grants = {g.key: g for g in grants}
        self.default_scope = default_scope

    def scope_for(self, authorization: str | None, asked: str | None) -> str:
        """The scope a request works in, or 401/403."""
        if not self.grants:
            return asked or self.default_scope
        token = (authorization or "").removeprefix("Bearer ").strip()
        grant = self.grants.get(token)
        if grant is None:
            raise APIError(
                401,
                "missing or invalid API key (send Authorization: Bearer KEY)",
                code="invalid_api_key",
            )
        if asked is None:
            return grant.scopes[0]
        if asked not in grant.scopes:
            raise APIError(403, f"this API key may not use scope {asked!r}", code="scope_denied")
        return asked


class GenerationGate:
    """At most ``limit`` generations at once; one more is refused with 429 at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def acquire(self) -> None:
        """Take a slot or raise 429."""
        if not self._slots.acquire(blocking=False):
            raise APIError(
                429,
                f"the server is already running {self.limit} generations; retry shortly",
                code="too_many_concurrent_requests",
                headers={"Retry-After": "1"},
            )

    def release(self) -> None:
        """Give the slot back."""
        self._slots.release()

    def take(self) -> Slot:
        """A slot (or 429) that whoever finishes the generation gives back, once."""
        self.acquire()
        return Slot(self)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """A slot for the block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()


class Slot:
    """One taken generation slot; :meth:`release` gives it back the first time only."""

    def __init__(self, gate: GenerationGate) -> None:
        self._gate: GenerationGate | None = gate
        self._lock = threading.Lock()

    def release(self) -> None:
        """Give the slot back (again: nothing)."""
        with self._lock:
            gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()
