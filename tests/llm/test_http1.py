"""The proxy's HTTP/1.1 client against raw loopback servers: bodies byte for byte (chunked,
with extensions and trailers, and by length), a kept-alive connection the server dropped,
refused connections and read timeouts."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from engram_sdk.llm.http1 import Http1Pool, UpstreamBroken, UpstreamTimeout

Handler = Callable[[socket.socket, int], None]


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


@pytest.fixture
def raw_server() -> Iterator[Callable[[Handler], tuple[int, list[int]]]]:
    """A loopback server running ``handler(conn, n)`` per accepted connection (n: its index);
    returns the port and the list of connection indices seen."""
    servers: list[socket.socket] = []

    def start(handler: Handler) -> tuple[int, list[int]]:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        servers.append(srv)
        seen: list[int] = []

        def loop() -> None:
            n = 0
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                seen.append(n)
                threading.Thread(target=handler, args=(conn, n), daemon=True).start()
                n += 1

        threading.Thread(target=loop, daemon=True).start()
        return srv.getsockname()[1], seen

    yield start
    for srv in servers:
        srv.close()


def _pool(port: int, read_timeout_s: float = 10.0) -> Http1Pool:
    return Http1Pool(
        f"http://127.0.0.1:{port}/v1",
        headers={"Authorization": "Bearer k"},
        connect_timeout_s=5.0,
        read_timeout_s=read_timeout_s,
    )


BODY = b"data: " + bytes(range(256)) * 40 + b"\n\n"


def test_chunked_and_sized_bodies_arrive_byte_for_byte(raw_server) -> None:
    def handler(conn: socket.socket, n: int) -> None:
        with conn:
            for _ in range(2):  # a chunked reply, then a sized one; twice, one connection
                head = _read_request(conn)
                assert head.startswith(b"POST /v1/chat/completions HTTP/1.1")
                assert b"Authorization: Bearer k" in head
                chunks = [BODY[i : i + 777] for i in range(0, len(BODY), 777)]
                framed = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + framed
                    + b"0\r\nX-Trailer: t\r\n\r\n"
                )
                _read_request(conn)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))

    port, seen = raw_server(handler)

    async def main() -> list[bytes]:
        pool = _pool(port)
        got = []
        for _ in range(4):
            resp = await pool.post("/chat/completions", b'{"stream": true}')
            assert resp.status_code == 200
            got.append(await resp.aread())
            await resp.aclose()
        await pool.aclose()
        return got

    assert asyncio.run(main()) == [BODY] * 4
    assert seen == [0]  # the four requests went over one kept-alive connection


def test_a_kept_alive_connection_the_server_dropped_is_retried_once_on_a_new_one(
    raw_server,
) -> None:
    def handler(conn: socket.socket, n: int) -> None:
        with conn:  # one reply, then the connection is dropped without saying so
            _read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    port, seen = raw_server(handler)

    async def main() -> list[bytes]:
        pool = _pool(port)
        got = []
        for _ in range(3):
            resp = await pool.post("/x", b"{}")
            got.append(await resp.aread())
            await resp.aclose()
            await asyncio.sleep(0.05)  # the server's close arrives meanwhile
        await pool.aclose()
        return got

    assert asyncio.run(main()) == [b"ok"] * 3
    assert seen == [0, 1, 2]


def test_refused_connections_and_silent_upstreams_are_named(raw_server) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nobody listens once this closes

    def silent(conn: socket.socket, n: int) -> None:
        _read_request(conn)  # and never answer

    port, _ = raw_server(silent)

    async def main() -> None:
        with pytest.raises(UpstreamBroken, match="cannot connect"):
            await _pool(closed_port).post("/x", b"{}")
        with pytest.raises(UpstreamTimeout):
            await _pool(port, read_timeout_s=0.3).post("/x", b"{}")

    asyncio.run(main())
