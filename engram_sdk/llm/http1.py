"""A small HTTP/1.1 client on asyncio streams, for ``engram serve``'s proxy hot path.

The proxy sends one kind of request (a JSON ``POST`` whose reply streams back) to one
upstream, thousands of times. A general client (httpx, httpcore, h11, anyio) spends more CPU
on that than the rest of the proxy together: the request goes out as two writes through
three layers of state machines. Here the request is one write on a kept-alive connection,
and the reply's body comes back as the bytes that arrive (``Content-Length``, chunked or
read to the end), undecoded. What it does not do, it leaves to httpx: proxies from the
environment, HTTP/2, redirects, cookies (:class:`~engram_sdk.llm.openai_async.AsyncUpstream`
picks httpx when the environment names a proxy).

Errors: :class:`UpstreamTimeout` (connect or read over its limit) and
:class:`UpstreamBroken` (refused, reset, malformed); a request on a pooled connection that
the upstream had closed is sent again once on a new one, before any reply byte was read.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
READ_SIZE = 64 * 1024


class UpstreamTimeout(Exception):
    """Connecting, or waiting for the next bytes of a reply, took longer than allowed."""


class UpstreamBroken(Exception):
    """The connection failed or the upstream sent something that is not HTTP/1.1."""


class _Conn:
    """One open connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reused = False

    def close(self) -> None:
        self.writer.close()


class Http1Response:
    """A reply whose head has been read; iterate :meth:`aiter_raw` for its body."""

    def __init__(self, pool: Http1Pool, conn: _Conn, status: int, headers: dict[str, str]) -> None:
        self._pool, self._conn = pool, conn
        self.status_code, self.headers = status, headers
        self._done = False
        self._reusable = headers.get("connection", "").lower() != "close"

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (chunked framing removed)."""
        reader, timeout = self._conn.reader, self._pool.read_timeout_s
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                async for part in _chunked(reader, timeout):
                    yield part
            elif (length := self.headers.get("content-length")) is not None:
                left = int(length)
                while left > 0:
                    async with asyncio.timeout(timeout):
                        part = await reader.read(min(left, READ_SIZE))
                    if not part:
                        raise UpstreamBroken("the connection closed mid-reply")
                    left -= len(part)
                    yield part
            else:  # the body ends with the connection
                self._reusable = False
                while True:
                    async with asyncio.timeout(timeout):
                        part = await reader.read(READ_SIZE)
                    if not part:
                        break
                    yield part
            self._done = True
        except TimeoutError as exc:
            raise UpstreamTimeout("no bytes from the upstream within the read timeout") from exc
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from exc

    async def aread(self) -> bytes:
        """The whole body."""
        return b"".join([part async for part in self.aiter_raw()])

    async def aclose(self) -> None:
        """Give the connection back to the pool when the body was read to its end, else
        close it."""
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        if self._done and self._reusable:
            self._pool.put_back(conn)
        else:
            conn.close()


async def _chunked(reader: asyncio.StreamReader, timeout: float) -> AsyncIterator[bytes]:
    while True:
        async with asyncio.timeout(timeout):
            line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0], 16)
        if size == 0:
            async with asyncio.timeout(timeout):
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
            return
        async with asyncio.timeout(timeout):
            data = await reader.readexactly(size + 2)
        yield data[:-2]


class Http1Pool:
    """Kept-alive connections to one ``http(s)://host:port``, for ``POST`` requests."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        connect_timeout_s: float,
        read_timeout_s: float,
        max_idle: int = 256,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL {base_url!r} must be http(s)://host[:port]/...")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        fixed = {"Host": netloc, "Content-Type": "application/json", **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.max_idle = max_idle
        self._idle: list[_Conn] = []

    async def post(self, path: str, body: bytes) -> Http1Response:
        """Send ``body`` to ``path`` (under the base URL's path); the reply once its head is
        in. A pooled connection the upstream closed meanwhile is retried once on a new one."""
        request = b"".join(
            (
                f"POST {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1"),
                self._head,
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        while True:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                conn.writer.write(request)
                status, headers = await self._read_head(conn)
            except (UpstreamBroken, OSError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if conn.reused:
                    continue  # closed by the upstream while idle: once more, on a new one
                if isinstance(exc, UpstreamBroken):
                    raise
                raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                conn.close()
                raise
            return Http1Response(self, conn, status, headers)

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl, limit=MAX_HEAD_BYTES
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"connecting to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise UpstreamBroken(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return _Conn(reader, writer)

    async def _read_head(self, conn: _Conn) -> tuple[int, dict[str, str]]:
        try:
            async with asyncio.timeout(self.read_timeout_s):
                head = await conn.reader.readuntil(b"\r\n\r\n")
        except TimeoutError as exc:
            raise UpstreamTimeout("no reply from the upstream within the read timeout") from exc
        except asyncio.LimitOverrunError as exc:
            raise UpstreamBroken("the upstream's reply head is over 64 kB") from exc
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
            raise UpstreamBroken(f"not an HTTP/1.1 reply: {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if not status_line[1].isdigit():
            raise UpstreamBroken(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        return int(status_line[1]), headers

    def put_back(self, conn: _Conn) -> None:
        """Keep ``conn`` for the next request (closed when the pool is full)."""
        if len(self._idle) >= self.max_idle or conn.writer.is_closing():
            conn.close()
            return
        conn.reused = True
        self._idle.append(conn)

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
