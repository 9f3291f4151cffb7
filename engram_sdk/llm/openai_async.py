"""An OpenAI-compatible upstream read asynchronously, for ``engram serve``'s proxy mode.

Requests go through one pool of kept-alive connections per upstream
(:class:`~engram_sdk.llm.http1.Http1Pool`: one write per request, the reply's bytes as they
arrive), or through one :class:`httpx.AsyncClient` when the environment names an HTTP proxy
for the upstream. Replies are handed on as the raw SSE events the upstream sent
(:func:`sse_events`), so the proxy never decodes and re-encodes a chunk it passes through.
Retries before the first byte follow :class:`~engram_sdk.llm.openai_http.OpenAIBackend`
(same statuses, ``Retry-After`` honoured); a reply that fails midway is an error, never
retried.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import httpx

from engram_sdk.llm.base import BackendError
from engram_sdk.llm.http1 import Http1Pool, UpstreamBroken, UpstreamTimeout
from engram_sdk.llm.openai_http import (
    RETRY_STATUS,
    OpenAIBackend,
    parse_retry_after,
    upstream_message,
)

DONE = b"[DONE]"
#: headers every httpx client sends on its own; the backend's other headers (the key, the
#: caller's own) go to the upstream on the pooled connections too
HTTPX_DEFAULTS = frozenset({"accept", "accept-encoding", "connection", "user-agent"})


class StreamedReply(Protocol):
    """What the proxy reads of an upstream reply (an :class:`httpx.Response` is one, and so
    is :class:`~engram_sdk.llm.http1.Http1Response`)."""

    status_code: int

    @property
    def headers(self) -> Mapping[str, str]: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


def _uses_proxy(url: str) -> bool:
    """Whether the environment sends requests for ``url`` through an HTTP proxy."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or "")


class AsyncUpstream:
    """The upstream of an :class:`OpenAIBackend`, with one pool of kept-alive connections."""

    def __init__(self, backend: OpenAIBackend, *, max_connections: int = 256) -> None:
        self.base_url = backend.base_url
        self.model = backend.model
        self.max_retries, self.backoff_s = backend.max_retries, backend.backoff_s
        timeout = backend.client.timeout
        headers = dict(backend.client.headers)
        self.client: httpx.AsyncClient | None = None
        self.pool: Http1Pool | None = None
        if _uses_proxy(self.base_url):
            limits = httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
            self.client = httpx.AsyncClient(timeout=timeout, headers=headers, limits=limits)
        else:
            own = {k: v for k, v in headers.items() if k.lower() not in HTTPX_DEFAULTS}
            self.pool = Http1Pool(
                self.base_url,
                headers={**own, "Accept": "text/event-stream"},
                connect_timeout_s=timeout.connect or 10.0,
                read_timeout_s=timeout.read or 120.0,
                max_idle=max_connections,
            )

    async def _send(self, path: str, body: dict[str, Any]) -> StreamedReply:
        if self.pool is not None:
            return await self.pool.post(path, json.dumps(body).encode())
        assert self.client is not None
        request = self.client.build_request("POST", self.base_url + path, json=body)
        return await self.client.send(request, stream=True)

    async def open(self, path: str, body: dict[str, Any]) -> StreamedReply:
        """POST ``body`` (already holding ``stream: true``); the response once it is 200."""
        url = self.base_url + path
        last, status, retry_after = "", 502, None
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                resp = await self._send(path, body)
            except (httpx.TimeoutException, UpstreamTimeout) as exc:
                last, status = f"timed out ({type(exc).__name__})", 504
            except (httpx.TransportError, UpstreamBroken) as exc:
                last, status = f"{type(exc).__name__}: {exc}", 502
            else:
                if resp.status_code == 200:
                    return resp
                status = resp.status_code
                try:
                    text = (await resp.aread()).decode("utf-8", "replace")[:300]
                except (httpx.HTTPError, UpstreamTimeout, UpstreamBroken):
                    text = ""
                await resp.aclose()
                last = f"HTTP {status}: {upstream_message(text)}"
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
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
        if self.pool is not None:
            await self.pool.aclose()
        if self.client is not None:
            await self.client.aclose()


async def sse_events(resp: StreamedReply, *, where: str) -> AsyncIterator[tuple[list[bytes], bool]]:
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
    except (httpx.TimeoutException, UpstreamTimeout) as exc:
        raise BackendError(f"{where} timed out mid-reply", status=504) from exc
    except (httpx.TransportError, UpstreamBroken) as exc:
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
