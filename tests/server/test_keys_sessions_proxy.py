"""API keys and scopes, sessions across a restart, and proxy mode against real upstreams."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

from engram_sdk.memory import Memory
from engram_sdk.sessions import Session
from tests.server.live import serve

MODEL = "smollm2-135m-instruct"
STUB = "stub-model"
ALICE, BOB = "sk-alice-0123456789", "sk-bob-9876543210"


class Upstream(BaseHTTPRequestHandler):
    """A stand-in upstream whose behaviour the test sets: ok, slow, 500 or 429."""

    behaviour = "ok"
    calls = 0
    stall_s = 60.0

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: dict[str, object], headers: dict[str, str] | None = None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._json(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})

    def _stalled(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = b'data: {"choices":[{"index":0,"delta":{"content":"po"}}]}\n\n'
        tail = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        for piece, wait in ((head, type(self).stall_s), (tail + b"data: [DONE]\n\n", 0)):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            time.sleep(wait)
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self) -> None:
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        mode = type(self).behaviour
        if mode == "slow":
            time.sleep(5)
        if mode == "stall":  # one event, nothing for stall_s, then the rest
            self._stalled()
            return
        if mode == "500":
            self._json(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
            return
        if mode == "429":
            self._json(
                429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "7"}
            )
            return
        events = [
            {"choices": [{"index": 0, "delta": {"content": "pong"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 1}},
        ]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Upstream.behaviour, Upstream.calls, Upstream.stall_s = "ok", 0, 60.0
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_session_survives_a_restart_and_other_keys_cannot_read_it(
    stub: str, tmp_path: Path
) -> None:
    # proxy mode: sessions, keys and restarts are the server's, whatever generates the reply
    store = f"lmdb://{tmp_path / 'store'}"
    args = ["--store", store, "--api-key", f"{ALICE}=alice,shared", "--upstream", stub]
    env = {"ENGRAM_API_KEYS": f"{BOB}=bob"}
    log = tmp_path / "serve.log"
    first = "Remember this: my locker number is 5521."
    with serve(args, log, env) as live:
        alice = openai.OpenAI(base_url=live.v1, api_key=ALICE, max_retries=0)
        alice.chat.completions.create(
            model=STUB,
            messages=[{"role": "user", "content": first}],
            max_tokens=4,
            extra_headers={"X-Session-ID": "lockers"},
        )
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=live.v1, api_key="sk-wrong", max_retries=0).models.list()
    # the server's sessions are the ones `engram sessions ls` lists
    listed = subprocess.run(
        [sys.executable, "-m", "engram_sdk.cli.main", "sessions", "ls", "--store", store],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ["alice", "lockers", "2", "turns"] in [line.split() for line in listed.splitlines()]
    with serve(args, log, env) as live:
        alice = openai.OpenAI(base_url=live.v1, api_key=ALICE, max_retries=0)
        second = alice.chat.completions.create(
            model=STUB,
            messages=[{"role": "user", "content": "What is my locker number?"}],
            max_tokens=4,
            extra_headers={"X-Session-ID": "lockers"},
        )
        # the second request's prompt held the first exchange, read back from the store
        assert second.model_extra["engram"]["history_turns"] == 2
        shown = httpx.get(
            live.v1 + "/sessions/lockers", headers={"Authorization": f"Bearer {ALICE}"}
        ).json()
        assert shown["messages"][0]["content"] == first
        assert len(shown["messages"]) == 4
        bob = {"Authorization": f"Bearer {BOB}"}
        # bob's own scope has no such session, and he may not ask for alice's
        assert httpx.get(live.v1 + "/sessions/lockers", headers=bob).status_code == 404
        denied = httpx.get(live.v1 + "/sessions/lockers?scope=alice", headers=bob)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "scope_denied"
        found = httpx.post(
            live.v1 + "/memory/search", json={"query": "locker number"}, headers=bob
        ).json()
        assert found == []
        bob_chat = openai.OpenAI(base_url=live.v1, api_key=BOB, max_retries=0)
        reply = bob_chat.chat.completions.create(
            model=STUB,
            messages=[{"role": "user", "content": "What is my locker number?"}],
            max_tokens=4,
            extra_headers={"X-Session-ID": "lockers"},
        )
        assert reply.model_extra["engram"]["citations"] == []
        assert reply.model_extra["engram"]["history_turns"] == 0
    text = log.read_text()
    assert ALICE not in text and BOB not in text


def test_proxy_surfaces_upstream_timeout_500_and_429(stub: str, tmp_path: Path) -> None:
    args = ["--store", f"lmdb://{tmp_path / 'store'}", "--upstream", stub]
    args += ["--upstream-timeout", "1", "--upstream-retries", "0"]
    with serve(args, tmp_path / "proxy.log") as live:
        client = openai.OpenAI(base_url=live.v1, api_key="unused", max_retries=0)
        ask = {"model": "stub-model", "messages": [{"role": "user", "content": "ping"}]}
        ok = client.chat.completions.create(**ask)
        assert ok.choices[0].message.content == "pong"
        assert ok.usage.prompt_tokens == 11 and ok.usage.completion_tokens == 1
        Upstream.behaviour = "slow"
        with pytest.raises(openai.APIStatusError) as slow:
            client.chat.completions.create(**ask)
        assert slow.value.status_code == 504 and slow.value.body["code"] == "upstream_timeout"
        Upstream.behaviour = "500"
        with pytest.raises(openai.APIStatusError) as boom:
            client.chat.completions.create(**ask)
        assert boom.value.status_code == 502 and "upstream exploded" in boom.value.body["message"]
        Upstream.behaviour = "429"
        with pytest.raises(openai.RateLimitError) as busy:
            client.chat.completions.create(**ask)
        assert busy.value.response.headers["retry-after"] == "7"
        assert "slow down" in busy.value.body["message"]


def test_requests_beyond_the_concurrency_bound_get_429(stub: str, tmp_path: Path) -> None:
    args = ["--store", f"lmdb://{tmp_path / 'store'}", "--upstream", stub, "--max-concurrent", "1"]
    Upstream.behaviour, Upstream.stall_s = "stall", 3.0  # a reply that holds the one slot 3 s
    ask = {"model": STUB, "messages": [{"role": "user", "content": "ping"}]}
    with serve(args, tmp_path / "serve.log") as live:
        client = openai.OpenAI(base_url=live.v1, api_key="unused", max_retries=0)
        with httpx.stream(
            "POST", live.v1 + "/chat/completions", json={**ask, "stream": True}
        ) as held:
            lines = held.iter_lines()
            assert '"po"' in next(line for line in lines if line)  # under way: the slot is taken
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(**ask, max_tokens=1)
            rest = [line for line in lines if line.startswith("data: ")]
        assert refused.value.response.headers["retry-after"] == "1"
        assert refused.value.body["type"] == "rate_limit_error"
        assert refused.value.body["code"] == "too_many_concurrent_requests"  # ours, not upstream's
        assert Upstream.calls == 1  # the refused request never reached the upstream
        assert rest[-1] == "data: [DONE]"
        # the slot is free again once the stream has ended
        Upstream.behaviour = "ok"
        assert client.chat.completions.create(**ask).choices[0].message.content == "pong"


def test_the_store_opens_for_a_writer_right_after_a_server_stops_mid_reply(
    stub: str, tmp_path: Path
) -> None:
    store = f"lmdb://{tmp_path / 'store'}"
    args = ["--store", store, "--upstream", stub, "--shutdown-timeout", "1"]
    Upstream.behaviour = "stall"
    with serve(args, tmp_path / "proxy.log") as live:
        body = {
            "model": "stub-model",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        with httpx.stream(
            "POST", live.v1 + "/chat/completions", json=body, headers={"X-Session-ID": "cut"}
        ) as resp:
            lines = resp.iter_lines()
            assert '"po"' in next(line for line in lines if line)  # the reply is under way
            live.proc.terminate()
            # the stalled reply is cut after the grace period; the process ends well before
            # the upstream would have finished (60 s) or timed out (120 s)
            assert live.proc.wait(timeout=30) is not None
            with pytest.raises(httpx.HTTPError):
                list(lines)
    with Memory.open(store) as mem:  # the writer lock is free; the cut turn was not stored
        assert Session(mem, "cut").turns() == []
        mem.add("written after the server stopped", source="after.txt")


@pytest.mark.slow
def test_proxy_to_a_real_engram_serve_adds_memory(tmp_path: Path) -> None:
    upstream_args = ["--store", f"lmdb://{tmp_path / 'up'}"]
    with serve(upstream_args, tmp_path / "up.log") as up:
        args = ["--store", f"lmdb://{tmp_path / 'proxy'}", "--upstream", up.v1]
        with serve(args, tmp_path / "proxy.log") as proxy:
            httpx.post(
                proxy.v1 + "/memory/add",
                json={"text": "The vault code of Heron is QX-7731-B.", "source": "heron.md"},
            )
            client = openai.OpenAI(base_url=proxy.v1, api_key="unused", max_retries=0)
            assert [m.id for m in client.models.list().data] == [MODEL]
            out = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "What is the vault code of Heron?"}],
                max_tokens=24,
                temperature=0,
                extra_body={"session_id": "via-proxy"},
            )
            assert "QX-7731-B" in (out.choices[0].message.content or "")
            assert out.model_extra["engram"]["citations"] == ["heron.md:1-1"]
            stream = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Say hi."}],
                max_tokens=4,
                stream=True,
            )
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            # the proxy stored the session; the upstream saw no session id
            assert httpx.get(proxy.v1 + "/sessions/via-proxy").status_code == 200
            assert httpx.get(up.v1 + "/sessions").json() == []
