"""The real ``openai`` client (sync, async, streaming) against ``engram serve`` on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.server.live import Live, serve

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("serve")
    docs = root / "docs"
    docs.mkdir()
    (docs / "heron.md").write_text("Project Heron notes.\nThe vault code of Heron is QX-7731-B.\n")
    args = ["--store", f"lmdb://{root / 'store'}", "--ingest-root", str(docs)]
    args += ["--max-body-bytes", "65536", "--max-concurrent", "8"]
    with serve(args, root / "serve.log") as live:
        yield live


@pytest.fixture
def client(server: Live) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0)


def test_models_lists_the_served_model_with_its_window(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    assert models[0].model_extra["context_length"] == 8192


def test_chat_reply_has_text_finish_reason_and_consistent_usage(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=6
    )
    choice = out.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    u = out.usage
    assert 0 < u.completion_tokens <= 6 and u.prompt_tokens > 5
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert out.model == MODEL and out.id.startswith("chatcmpl-")


def test_streamed_chat_equals_the_plain_reply_and_ends_with_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Name a colour."}]
    plain = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=8, temperature=0, extra_body={"memory": False}
    )
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"memory": False},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == plain.choices[0].finish_reason and all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == (
        plain.usage.completion_tokens
    )


def test_sse_stream_ends_with_done(server: Live) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 3,
        "stream": True,
    }
    with httpx.stream("POST", server.v1 + "/chat/completions", json=body, timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_completions_continue_a_prompt(client: openai.OpenAI) -> None:
    out = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4)
    assert out.object == "text_completion" and out.choices[0].text
    assert out.usage.prompt_tokens == 5 and out.usage.completion_tokens <= 4


def test_async_clients_run_concurrently(server: Live) -> None:
    async def main() -> list[str]:
        aclient = openai.AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0)
        calls = [
            aclient.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Say {w}."}], max_tokens=4
            )
            for w in ("one", "two", "three", "four")
        ]
        outs = await asyncio.gather(*calls)
        await aclient.close()
        return [o.choices[0].message.content or "" for o in outs]

    replies = asyncio.run(main())
    assert len(replies) == 4 and all(replies)


def test_unknown_model_is_404_in_openai_format(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(
            model="gpt-nope", messages=[{"role": "user", "content": "x"}], max_tokens=2
        )
    assert err.value.body["code"] == "model_not_found"
    assert "gpt-nope" in err.value.body["message"]


def test_bad_json_is_400_invalid_request(server: Live) -> None:
    r = httpx.post(
        server.v1 + "/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and "JSON" in err["message"]


def test_missing_messages_is_400_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[], max_tokens=2)
    assert err.value.body["param"] == "messages"


def test_body_over_the_limit_is_413(server: Live) -> None:
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 70_000}]}
    r = httpx.post(server.v1 + "/chat/completions", json=big)
    assert r.status_code == 413
    assert "65536" in r.json()["error"]["message"]


def test_langchain_and_litellm_request_shapes_are_accepted(server: Live) -> None:
    # ChatOpenAI: n, stream=false, content parts; LiteLLM: extra fields, user, metadata
    langchain = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Say yes."}]},
        ],
        "n": 1,
        "stream": False,
        "temperature": 0.0,
        "max_completion_tokens": 4,
    }
    litellm = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say no."}],
        "max_tokens": 4,
        "user": "litellm-user",
        "metadata": {"trace": "abc"},
        "extra_litellm_field": True,
    }
    for body in (langchain, litellm):
        r = httpx.post(server.v1 + "/chat/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
    # LiteLLM's ``user`` named the session
    sessions = httpx.get(server.v1 + "/sessions").json()
    assert "litellm-user" in {s["id"] for s in sessions}


def test_memory_endpoints_add_search_context_and_ingest_roots(server: Live, tmp_path: Path) -> None:
    added = httpx.post(
        server.v1 + "/memory/add",
        json={"text": "The ferry to Lundy leaves at 07:45.", "source": "ferry.txt"},
    ).json()
    assert len(added["passage_ids"]) == 1
    hits = httpx.post(server.v1 + "/memory/search", json={"query": "ferry to Lundy"}).json()
    assert hits[0]["source"] == "ferry.txt" and hits[0]["line_start"] == 1
    ctx = httpx.post(
        server.v1 + "/memory/context", json={"query": "ferry to Lundy", "max_tokens": 100}
    ).json()
    assert "07:45" in ctx["text"] and ctx["tokens"] <= 100
    # a folder under the ingest root is ingested; one outside it is refused
    docs = Path(server_doc_root(server))
    report = httpx.post(server.v1 + "/memory/ingest", json={"path": str(docs)}, timeout=60)
    assert report.status_code == 200 and report.json()["files_indexed"] == 1
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    r = httpx.post(server.v1 + "/memory/ingest", json={"path": str(outside)})
    assert r.status_code == 403 and r.json()["error"]["code"] == "path_not_allowed"
    escape = httpx.post(server.v1 + "/memory/ingest", json={"path": str(docs / ".." / "store")})
    assert escape.status_code == 403


def server_doc_root(server: Live) -> str:
    """The ``--ingest-root`` the fixture started the server with."""
    args = server.proc.args
    assert isinstance(args, list)
    return str(args[args.index("--ingest-root") + 1])


def test_chat_answers_from_an_ingested_document_with_citation(
    server: Live, client: openai.OpenAI
) -> None:
    docs = server_doc_root(server)
    httpx.post(server.v1 + "/memory/ingest", json={"path": docs}, timeout=60)
    out = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the vault code of Heron?"}],
        max_tokens=24,
        temperature=0,
    )
    assert "QX-7731-B" in (out.choices[0].message.content or "")
    assert any(
        c.startswith(str(Path(docs) / "heron.md")) for c in out.model_extra["engram"]["citations"]
    )


def test_session_turns_are_stored_and_listed(server: Live, client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Remember: my parrot is called Kiwi."}],
        max_tokens=4,
        extra_headers={"X-Session-ID": "parrot"},
    )
    shown = httpx.get(server.v1 + "/sessions/parrot").json()
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    assert shown["messages"][0]["content"] == "Remember: my parrot is called Kiwi."
    gone = httpx.delete(server.v1 + "/sessions/parrot").json()
    assert gone["deleted_turns"] == 2
    assert httpx.get(server.v1 + "/sessions/parrot").status_code == 404
