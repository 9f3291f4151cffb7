"""Proxy mode passes the upstream's SSE events through, over kept-alive connections."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import openai
import pytest

from tests.server.live import Live, serve

# compact JSON, extra fields and an id of the upstream's own: re-serialising would change them
EVENTS = [
    b'{"id":"up-7","object":"chat.completion.chunk","model":"up","x_trace":"a1",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}',
    b'{"id":"up-7","object":"chat.completion.chunk","model":"up","x_trace":"a2",'
    b'"choices":[{"index":0,"delta":{"content":"Blue "},"finish_reason":null}]}',
    b'{"id":"up-7","object":"chat.completion.chunk","model":"up","x_trace":"a3",'
    b'"choices":[{"index":0,"delta":{"content":"heron."},"finish_reason":null}]}',
    b'{"id":"up-7","object":"chat.completion.chunk","model":"up","x_trace":"a4",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
]
TEXT_EVENTS = [
    b'{"id":"up-8","object":"text_completion","model":"up","x_trace":"t1",'
    b'"choices":[{"index":0,"text":"Blue ","finish_reason":null}]}',
    b'{"id":"up-8","object":"text_completion","model":"up","x_trace":"t2",'
    b'"choices":[{"index":0,"text":"heron.","finish_reason":"length"}]}',
]
USAGE = b'{"id":"up-7","object":"chat.completion.chunk","model":"up","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}'


class Recording(BaseHTTPRequestHandler):
    """An upstream that streams EVENTS in pieces cut mid-event, and records what it saw."""

    protocol_version = "HTTP/1.1"
    bodies: ClassVar[list[dict]] = []
    paths: ClassVar[list[str]] = []
    peers: ClassVar[set[tuple[str, int]]] = set()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        data = json.dumps({"object": "list", "data": [{"id": "up", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        type(self).peers.add(self.client_address)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        type(self).paths.append(self.path)
        events = TEXT_EVENTS if self.path.endswith("/v1/completions") else EVENTS
        if (body.get("stream_options") or {}).get("include_usage"):
            events = [*events, USAGE]
        stream = b"".join(b"data: " + e + b"\r\n\r\n" for e in events) + b"data: [DONE]\r\n\r\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for at in range(0, len(stream), 97):  # pieces that split events and lines
            piece = stream[at : at + 97]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("proxy")
    args = ["--store", f"lmdb://{root / 'store'}", "--upstream", upstream]
    with serve(args, root / "proxy.log") as live:
        yield live


def test_events_pass_through_byte_for_byte_over_one_kept_alive_connection(proxy: Live) -> None:
    Recording.bodies.clear()
    Recording.peers.clear()
    body = {
        "model": "up",
        "stream": True,
        "messages": [{"role": "user", "content": "Which bird?"}],
        "memory": False,
    }
    for _ in range(5):
        with httpx.stream("POST", proxy.v1 + "/chat/completions", json=body) as resp:
            raw = resp.read()
    payloads = [e[6:] for e in raw.split(b"\n\n") if e.startswith(b"data: ")]
    assert payloads[:3] == EVENTS[:3]  # the upstream's bytes, untouched
    finish = json.loads(payloads[3])
    assert finish.pop("engram")["citations"] == [] and finish == json.loads(EVENTS[3])
    assert payloads[4:] == [b"[DONE]"]  # no usage: the client did not ask for it
    assert len(Recording.peers) == 1  # five requests, one upstream connection
    assert "stream_options" not in Recording.bodies[-1]


def test_proxied_session_turns_are_stored_and_sent_upstream_next_turn(proxy: Live) -> None:
    client = openai.OpenAI(base_url=proxy.v1, api_key="unused", max_retries=0)
    Recording.bodies.clear()
    first = client.chat.completions.create(
        model="up",
        messages=[{"role": "user", "content": "Which bird?"}],
        extra_headers={"X-Session-ID": "birds"},
    )
    assert first.choices[0].message.content == "Blue heron."
    assert first.usage.total_tokens == 7
    stream = client.chat.completions.create(
        model="up",
        messages=[{"role": "user", "content": "And its colour?"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Session-ID": "birds"},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ("Blue heron.")
    assert chunks[-1].usage.total_tokens == 7
    meta = next(c.model_extra["engram"] for c in chunks if "engram" in c.model_extra)
    assert meta["history_turns"] == 2 and meta["session_id"] == "birds"
    # the upstream got the first exchange back as history
    sent = [(m["role"], m["content"]) for m in Recording.bodies[-1]["messages"]]
    assert ("user", "Which bird?") in sent and ("assistant", "Blue heron.") in sent
    shown = httpx.get(proxy.v1 + "/sessions/birds").json()
    assert [m["content"] for m in shown["messages"]] == [
        "Which bird?",
        "Blue heron.",
        "And its colour?",
        "Blue heron.",
    ]


def test_completions_pass_through_upstream_events_and_gather_a_plain_reply(proxy: Live) -> None:
    Recording.bodies.clear()
    Recording.paths.clear()
    body = {"model": "up", "prompt": "The bird is a", "max_tokens": 2, "stream": True}
    with httpx.stream("POST", proxy.v1 + "/completions", json=body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read()
    # the upstream's completions events, untouched, then [DONE]
    assert raw == b"".join(b"data: " + e + b"\n\n" for e in TEXT_EVENTS) + b"data: [DONE]\n\n"
    sent = Recording.bodies[-1]
    assert Recording.paths[-1] == "/v1/completions"
    assert sent["prompt"] == "The bird is a" and sent["stream"] is True and sent["max_tokens"] == 2
    client = openai.OpenAI(base_url=proxy.v1, api_key="unused", max_retries=0)
    out = client.completions.create(model="up", prompt="The bird is a", max_tokens=2)
    assert out.choices[0].text == "Blue heron." and out.choices[0].finish_reason == "length"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (5, 2)
