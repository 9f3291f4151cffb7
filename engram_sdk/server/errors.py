"""Errors in OpenAI's format: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engram_sdk.errors import EngramError, InputError
from engram_sdk.llm.base import BackendError

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    504: "upstream_error",
}


class APIError(Exception):
    """An error answered to the client with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        """The JSON body."""
        return {
            "error": {
                "message": self.message,
                "type": TYPES.get(self.status, "server_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        """The HTTP response."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def from_backend(exc: BackendError) -> APIError:
    """An upstream failure as the client sees it: 429 stays 429 (with Retry-After), a timeout
    is 504, anything else 502."""
    if exc.status == 429:
        headers = {"Retry-After": f"{exc.retry_after:g}"} if exc.retry_after is not None else {}
        return APIError(
            429, f"upstream rate limit: {exc}", code="upstream_rate_limited", headers=headers
        )
    if exc.status == 504:
        return APIError(504, f"upstream timed out: {exc}", code="upstream_timeout")
    return APIError(502, f"upstream failed: {exc}", code="upstream_error")


def too_large(max_bytes: int) -> APIError:
    """413 for a body over ``max_bytes``."""
    return APIError(
        413, f"request body over the server's limit of {max_bytes} bytes", code="body_too_large"
    )


def invalid_request(errors: Sequence[Any]) -> APIError:
    """400 for a body that is not JSON or not a valid request (pydantic's ``errors()``): the
    first problem, naming the field."""
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    if first.get("type") == "json_invalid":
        message = f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}"
        where = None
    else:
        message = f"{where or 'body'}: {first.get('msg', 'invalid request')}"
    return APIError(400, message, param=where, code="invalid_request")


def install(app: FastAPI) -> None:
    """Route every error through the OpenAI format."""

    @app.exception_handler(APIError)
    async def _api(_: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_request(exc.errors()).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return APIError(exc.status_code, str(exc.detail)).response()

    @app.exception_handler(BackendError)
    async def _backend(_: Request, exc: BackendError) -> JSONResponse:
        return from_backend(exc).response()

    @app.exception_handler(InputError)
    async def _input(_: Request, exc: InputError) -> JSONResponse:
        return APIError(400, str(exc), code="invalid_request").response()

    @app.exception_handler(EngramError)
    async def _engram(_: Request, exc: EngramError) -> JSONResponse:
        return APIError(500, f"{type(exc).__name__}: {exc}", code="server_error").response()
