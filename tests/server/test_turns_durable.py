"""Every reply a client saw complete has its turns in the store file, even when the server is
killed (SIGKILL) right after: the group commit ends before the reply does; and recalls
running beside those writes never fail a reply."""

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

CLIENTS, ROUNDS, BURST = 8, 3, 24
BURST_IDS = range(100, 100 + BURST)


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


def _ask(url: str, i: int, *, memory: bool, question: str) -> str:
    body = {
        "model": "stub",
        "stream": True,
        "memory": memory,
        "messages": [{"role": "user", "content": question}],
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


def test_turns_of_completed_replies_survive_a_sigkill_and_recalls_beside_writes_never_fail(
    upstream: str, tmp_path: Path
) -> None:
    """Clients continue sessions with memory on: each one's turns are stored (index segments
    added and merged) while the others recall from the same scope. Every reply completes;
    then a burst of replies ends together and the server is killed at once (SIGKILL: no
    shutdown, no flush); every turn of every completed reply is in the store file."""
    store = f"lmdb://{tmp_path / 'store'}"
    with Memory.open(store) as mem:
        mem.add("alpha beta gamma delta\n" * 40, source="a.txt")
    args = ["--store", store, "--upstream", upstream, "--max-concurrent", str(BURST)]

    def client(i: int) -> list[str]:
        return [
            _ask(url, i, memory=True, question=f"alpha beta gamma {i} {r}") for r in range(ROUNDS)
        ]

    with serve(args, tmp_path / "serve.log") as live:
        url = live.v1 + "/chat/completions"
        with ThreadPoolExecutor(BURST) as pool:
            replies = list(pool.map(client, range(CLIENTS)))
            # a burst of replies ending together, then the kill at once
            burst = list(
                pool.map(lambda i: _ask(url, i, memory=False, question=f"q{i}"), BURST_IDS)
            )
        live.proc.kill()
        live.proc.wait(timeout=30)
        assert "Traceback" not in live.log_text()
    with Memory.open(store, mode="r") as mem:
        for i in range(CLIENTS):
            turns = [t.content for t in Session(mem, f"s{i}").turns()]
            want = [f"alpha beta gamma {i} {r}" for r in range(ROUNDS)]
            assert turns[0::2] == want
            assert turns[1::2] == replies[i] == [f"echo: {q}" for q in want]
        for i, reply in zip(BURST_IDS, burst, strict=True):
            assert [t.content for t in Session(mem, f"s{i}").turns()] == [f"q{i}", reply]
            assert reply == f"echo: q{i}"
