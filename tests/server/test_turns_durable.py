"""Every reply a client saw complete has its turns in the store file, even when the server is
killed (SIGKILL) right after: the group commit ends before the reply does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from engram_sdk.memory import Memory
from engram_sdk.sessions import Session
from tests.server.live import serve

CLIENTS = 24


class _Upstream(BaseHTTPRequestHandler):
    """Streams back "echo: " and the last user message, so each reply is its own."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        data = json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]})
        self._send("application/json", data.encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][-1]["content"].rsplit("Question: ", 1)[-1]
        events = [
            {"choices": [{"index": 0, "delta": {"content": "echo: "}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": question}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self._send("text/event-stream", text.encode())

    def _send(self, kind: str, data: bytes) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\n\r\n"
        self.wfile.write(head.encode() + data)


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _ask(url: str, i: int) -> str:
    body = {
        "model": "stub",
        "stream": True,
        "memory": False,
        "messages": [{"role": "user", "content": f"question {i}"}],
    }
    text = []
    with httpx.stream("POST", url, json=body, headers={"X-Session-ID": f"s{i}"}, timeout=60) as r:
        for line in r.iter_lines():
            if line == "data: [DONE]":
                return "".join(text)
            if line.startswith("data: "):
                for choice in json.loads(line[6:]).get("choices", []):
                    text.append(choice["delta"].get("content") or "")
    raise AssertionError(f"reply {i} ended without [DONE]")


def test_turns_of_completed_replies_survive_a_sigkill_of_the_server(
    upstream: str, tmp_path: Path
) -> None:
    store = f"lmdb://{tmp_path / 'store'}"
    args = ["--store", store, "--upstream", upstream, "--max-concurrent", str(CLIENTS)]
    with serve(args, tmp_path / "serve.log") as live:
        url = live.v1 + "/chat/completions"
        with ThreadPoolExecutor(CLIENTS) as pool:
            replies = list(pool.map(lambda i: _ask(url, i), range(CLIENTS)))
        live.proc.kill()  # no shutdown, no flush: what is in the file is what was committed
        live.proc.wait(timeout=30)
    assert replies == [f"echo: question {i}" for i in range(CLIENTS)]
    with Memory.open(store, mode="r") as mem:
        for i in range(CLIENTS):
            turns = [(t.role, t.content) for t in Session(mem, f"s{i}").turns()]
            assert turns == [("user", f"question {i}"), ("assistant", replies[i])]
