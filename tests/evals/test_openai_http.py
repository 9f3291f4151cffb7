"""The OpenAI-compatible adapter against a real HTTP server on loopback."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from engram_sdk.evals import EvalError, OpenAIAdapter, TiktokenCounter, ruler_samples, run_ruler
from engram_sdk.evals.adapters import OracleAdapter


class Server:
    """Answers like an OpenAI server with the oracle; fails the first requests on demand."""

    def __init__(self, failures=()):
        self.failures = list(failures)  # status codes to return first, in order
        self.requests = []
        self.lock = threading.Lock()
        samples = {}
        self.samples = samples
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append((self.path, body, self.headers.get("Authorization")))
                    fail = outer.failures.pop(0) if outer.failures else None
                if fail:
                    self.send_response(fail)
                    if fail == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "busy"}}')
                    return
                prompt = body["messages"][0]["content"] if "messages" in body else body["prompt"]
                sample = next(s for s in outer.samples.values() if s.input in prompt)
                text = OracleAdapter().answer(sample)
                choice = (
                    {"message": {"role": "assistant", "content": text}}
                    if "messages" in body
                    else {"text": text}
                )
                data = json.dumps({"choices": [choice]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_run_over_http_scores_like_the_oracle(server, tmp_path, monkeypatch, mode):
    monkeypatch.setenv("TEST_KEY", "sk-test")
    for s in ruler_samples(["niah_single_1", "vt", "fwe"], [1024], 2, TiktokenCounter()):
        server.samples[s.id] = s
    m = OpenAIAdapter(
        "tiny", server.url, mode=mode, api_key_env="TEST_KEY", concurrency=3, backoff_s=0.01
    )
    r = run_ruler(
        m,
        tasks=["niah_single_1", "vt", "fwe"],
        lengths=[1024],
        n_samples=2,
        out_dir=tmp_path,
        progress=False,
    )
    assert r.average[1024] == 100.0
    path, body, auth = server.requests[0]
    assert path == ("/v1/chat/completions" if mode == "chat" else "/v1/completions")
    assert auth == "Bearer sk-test" and body["model"] == "tiny" and body["temperature"] == 0.0
    assert sorted({b["max_tokens"] for _, b, _ in server.requests}) == [30, 50, 128]


def test_429_and_500_are_retried_then_succeed(server, tmp_path):
    server.failures = [429, 500, 503]
    (s,) = ruler_samples(["niah_single_1"], [1024], 1, TiktokenCounter())
    server.samples[s.id] = s
    m = OpenAIAdapter("tiny", server.url, mode="completions", concurrency=1, backoff_s=0.01)
    assert m.answer(s).strip() == s.outputs[0]
    assert m.retries == 3 and len(server.requests) == 4


def test_client_errors_fail_at_once_and_retries_run_out(server, tmp_path):
    (s,) = ruler_samples(["niah_single_1"], [1024], 1, TiktokenCounter())
    server.samples[s.id] = s
    server.failures = [400]
    m = OpenAIAdapter("tiny", server.url, concurrency=1, backoff_s=0.01, max_retries=3)
    with pytest.raises(EvalError, match="HTTP 400"):
        m.answer(s)
    assert len(server.requests) == 1
    server.failures = [500] * 10
    with pytest.raises(EvalError, match="after 4 attempts"):
        m.answer(s)


def test_unreachable_server_is_a_clear_error(tmp_path):
    (s,) = ruler_samples(["niah_single_1"], [1024], 1, TiktokenCounter())
    m = OpenAIAdapter("x", "http://127.0.0.1:9/v1", max_retries=1, backoff_s=0.01, timeout_s=2)
    with pytest.raises(EvalError, match="failed after 2 attempts"):
        m.answer(s)
