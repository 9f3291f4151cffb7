"""Chat requests answered by the fast path beside FastAPI behave as FastAPI's route did:
the same errors in OpenAI's shape, the body limit, keys and scopes, sessions by header."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.server.live import Live, serve
from tests.server.test_proxy_passthrough import Recording, upstream  # noqa: F401 (fixture)

KEY = "sk-fast-alpha"
LIMIT = 4096


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:  # noqa: F811
    root = tmp_path_factory.mktemp("fast")
    args = ["--store", f"lmdb://{root / 'store'}", "--upstream", upstream]
    args += ["--api-key", f"{KEY}=alpha", "--max-body-bytes", str(LIMIT)]
    with serve(args, root / "proxy.log") as live:
        yield live


def _post(live: Live, content: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    sent = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **headers}
    return httpx.post(live.v1 + "/chat/completions", content=content, headers=sent)


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_bad_requests_get_openai_errors_naming_the_problem(proxy: Live) -> None:
    ok = b'{"model": "up", "messages": [{"role": "user", "content": "hi"}], "memory": false}'
    assert _post(proxy, ok).status_code == 200
    no_key = httpx.post(proxy.v1 + "/chat/completions", content=ok)
    assert _error(no_key, 401)["code"] == "invalid_api_key"
    bad_json = _error(_post(proxy, b'{"model": "up", "messages": ['), 400)
    assert bad_json["type"] == "invalid_request_error" and "JSON" in bad_json["message"]
    empty = _error(_post(proxy, b'{"model": "up", "messages": []}'), 400)
    assert empty["param"] == "messages"
    role = b'{"model": "up", "messages": [{"role": "bot", "content": "x"}]}'
    assert _error(_post(proxy, role), 400)["param"] == "messages.0.role"
    model = b'{"model": "gpt-nope", "messages": [{"role": "user", "content": "x"}]}'
    assert _error(_post(proxy, model), 404)["code"] == "model_not_found"
    assert _error(_post(proxy, ok, **{"X-Engram-Scope": "beta"}), 403)["code"] == "scope_denied"


def test_the_body_limit_holds_declared_or_streamed(proxy: Live) -> None:
    big = b'{"model": "up", "messages": [{"role": "user", "content": "' + b"x" * LIMIT + b'"}]}'
    assert str(LIMIT) in _error(_post(proxy, big), 413)["message"]
    pieces = iter([big[i : i + 512] for i in range(0, len(big), 512)])  # chunked, no length
    assert _error(_post(proxy, pieces), 413)["code"] == "body_too_large"


def test_the_openai_client_streams_and_sessions_follow_the_header(proxy: Live) -> None:
    client = openai.OpenAI(base_url=proxy.v1, api_key=KEY, max_retries=0)
    ask = {"model": "up", "messages": [{"role": "user", "content": "Which bird?"}]}
    plain = client.chat.completions.create(**ask, extra_headers={"x-SESSION-id": "fast-1"})
    assert plain.choices[0].message.content == "Blue heron."
    assert plain.model_extra["engram"]["session_id"] == "fast-1"
    chunks = list(client.chat.completions.create(**ask, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Blue heron."
    sessions = httpx.get(proxy.v1 + "/sessions", headers={"Authorization": f"Bearer {KEY}"})
    assert "fast-1" in {s["id"] for s in sessions.json()}
    assert Recording.bodies[-1]["stream"] is True
    assert "/v1/chat/completions" in httpx.get(proxy.url + "/openapi.json").json()["paths"]
