"""An OpenAI-compatible upstream read asynchronously, for ``engram serve``'s proxy mode.

One :class:`httpx.AsyncClient` per upstream, shared by every request, keeps connections
alive; replies are handed on as the raw SSE events the upstream sent (:func:`sse_events`),
so the proxy never decodes and re-encodes a chunk it passes through. Retries before the
first byte follow :class:`~engram_sdk.llm.openai_http.OpenAIBackend` (same statuses,
``Retry-After`` honoured); a reply that fails midway is an error, never retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from engram_sdk.llm.base import BackendError
from engram_sdk.llm.openai_http import (
    RETRY_STATUS,
    OpenAIBackend,
    parse_retry_after,
    upstream_message,
)

DONE = b"[DONE]"


class AsyncUpstream:
    """The upstream of an :class:`OpenAIBackend`, with one pooled async client."""

    def __init__(self, backend: OpenAIBackend, *, max_connections: int = 256) -> None:
        self.base_url = backend.base_url
        self.model = backend.model
        self.max_retries, self.backoff_s = backend.max_retries, backend.backoff_s
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self.client = httpx.AsyncClient(
            timeout=backend.client.timeout, headers=backend.client.headers, limits=limits
        )

    async def open(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST ``body`` (already holding ``stream: true``); the response once it is 200."""
        url = self.base_url + path
        last, status, retry_after = "", 502, None
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                resp = await self.client.send(
                    self.client.build_request("POST", url, json=body), stream=True
                )
            except httpx.TimeoutException as exc:
                last, status = f"timed out ({type(exc).__name__})", 504
            except httpx.TransportError as exc:
                last, status = f"{type(exc).__name__}: {exc}", 502
            else:
                if resp.status_code == 200:
                    return resp
                status = resp.status_code
                text = (await resp.aread()).decode("utf-8", "replace")[:300]
                await resp.aclose()
                last = f"HTTP {status}: {upstream_message(text)}"
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if status not in RETRY_STATUS:
                    raise BackendError(f"{url} answered {last}", status=status)
            if attempt < self.max_retries:
                wait = retry_after if retry_after is not None else self.backoff_s * 2**attempt
                await asyncio.sleep(min(wait, 30.0))
        raise BackendError(
            f"{url} failed after {self.max_retries + 1} attempts ({last})",
            status=status,
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.client.aclose()


async def sse_events(
    resp: httpx.Response, *, where: str
) -> AsyncIterator[tuple[list[bytes], bool]]:
    """The complete SSE events of ``resp`` as they arrive, in batches (one per network read),
    each with whether ``[DONE]`` ended it.

    Each event is its ``data:`` payload, untouched; ``[DONE]`` itself is not included, and
    the stream is read to its end after it (so the connection goes back to the pool).
    Comments and other fields are skipped. A broken or timed-out stream raises
    :class:`BackendError` (504 for a timeout, 502 otherwise).
    """
    pending, done = b"", False
    try:
        async for raw in resp.aiter_raw():
            if done:
                continue
            pending += raw
            cut = pending.rfind(b"\n\n")
            if cut < 0:
                continue
            complete, pending = pending[:cut], pending[cut + 2 :]
            batch, done = _payloads(complete)
            if batch or done:
                yield batch, done
        if pending.strip() and not done:
            batch, done = _payloads(pending)
            yield batch, done
    except httpx.TimeoutException as exc:
        raise BackendError(f"{where} timed out mid-reply", status=504) from exc
    except httpx.TransportError as exc:
        raise BackendError(f"{where} broke off mid-reply: {exc}", status=502) from exc


def _payloads(block: bytes) -> tuple[list[bytes], bool]:
    out: list[bytes] = []
    for event in block.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"\n".join(
            line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
        )
        if not data:
            continue
        if data.strip() == DONE:
            return out, True
        out.append(data)
    return out, False
