"""Any OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama, a hosted API, engram serve).

The key is read from an environment variable and never logged. 429 and 5xx answers and
connection errors are retried with exponential backoff (``Retry-After`` honoured) before
the first byte of a reply; a reply that fails midway is an error, never retried.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from engram_sdk.errors import InputError
from engram_sdk.llm.base import (
    Backend,
    BackendError,
    Chunk,
    Completion,
    Message,
    SamplingOptions,
    Usage,
    check_messages,
)
from engram_sdk.llm.template import CHATML, ChatTemplate

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend(Backend):
    """Chat completions (or completions, for raw prompts) over HTTP with SSE streaming.

    Token counts are estimates (cl100k) unless the server reports usage; ``context_length``
    is what the caller says the upstream model reads (default 8192).
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "default",
        api_key_env: str = "OPENAI_API_KEY",
        api_key: str | None = None,
        context_length: int = 8192,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        name: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"base URL {base_url!r} must start with http:// or https://")
        if max_retries < 0 or timeout_s <= 0:
            raise InputError("max_retries must be >= 0 and timeout_s > 0")
        from engram_sdk.tokenizer import get_tokenizer

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = name or model
        self._context_length = context_length
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.retries = 0
        key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            headers={**auth, **(headers or {})},
        )
        self.tokenizer = get_tokenizer("cl100k_base")
        self.template = ChatTemplate(CHATML)

    @property
    def context_length(self) -> int:
        """What the caller declared the upstream model reads."""
        return self._context_length

    def count_tokens(self, text: str) -> int:
        """An estimate in cl100k (the upstream's tokenizer is unknown)."""
        return self.tokenizer.count(text)

    def render(self, messages: Sequence[Message]) -> str:
        """ChatML, for counting only: the upstream applies its own template."""
        return self.template.render(messages)

    def _stream_chat(
        self, messages: Sequence[Message], options: SamplingOptions
    ) -> Iterator[Chunk]:
        body = self._body(options)
        body["messages"] = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self._sse("/chat/completions", body, chat=True)

    def _stream_prompt(self, prompt: str, options: SamplingOptions) -> Iterator[Chunk]:
        body = self._body(options)
        body["prompt"] = prompt
        return self._sse("/completions", body, chat=False)

    def generate(
        self,
        messages: Sequence[Message] | None = None,
        *,
        prompt: str | None = None,
        options: SamplingOptions | None = None,
    ) -> Completion:
        """One non-streaming request (``stream: false``)."""
        if (messages is None) == (prompt is None):
            raise InputError("give exactly one of messages or prompt")
        options = options or SamplingOptions()
        body = self._body(options, stream=False)
        if messages is not None:
            check_messages(messages)
            body["messages"] = [{"role": m["role"], "content": m["content"]} for m in messages]
            path = "/chat/completions"
        else:
            body["prompt"] = prompt
            path = "/completions"
        resp = self._open(path, body)
        try:
            out = json.loads(resp.read())
            choice = out["choices"][0]
            text = choice["message"]["content"] if messages is not None else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"unexpected response from {self.base_url}{path}: {exc}") from exc
        finally:
            resp.close()
        u = out.get("usage") or {}
        usage = Usage(
            u.get("prompt_tokens", self.count_tokens(json.dumps(body))),
            u.get("completion_tokens", self.count_tokens(text or "")),
        )
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Completion(text=text or "", finish_reason=finish, usage=usage)

    def _body(self, options: SamplingOptions, *, stream: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if options.stop:
            body["stop"] = list(options.stop)
        return body

    def _open(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST with retries until a 200 starts streaming."""
        url = self.base_url + path
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * (2**attempt)
            retry_after: float | None = None
            try:
                resp = self.client.send(
                    self.client.build_request("POST", url, json=body), stream=True
                )
            except httpx.TimeoutException as exc:
                last, status = f"timed out ({type(exc).__name__})", 504
            except httpx.TransportError as exc:
                last, status = f"{type(exc).__name__}: {exc}", 502
            else:
                if resp.status_code == 200:
                    return resp
                status = resp.status_code
                text = resp.read().decode("utf-8", "replace")[:300]
                resp.close()
                last = f"HTTP {status}: {upstream_message(text)}"
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if status not in RETRY_STATUS:
                    raise BackendError(f"{url} answered {last}", status=status)
            if attempt < self.max_retries:
                self.retries += 1
                time.sleep(min(retry_after if retry_after is not None else wait, 30.0))
        raise BackendError(
            f"{url} failed after {self.max_retries + 1} attempts ({last})",
            status=status,
            retry_after=retry_after,
        )

    def _sse(self, path: str, body: dict[str, Any], *, chat: bool) -> Iterator[Chunk]:
        resp = self._open(path, body)
        finish: str | None = None
        usage: Usage | None = None
        parts: list[str] = []
        try:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if event.get("error"):
                    raise BackendError(f"upstream error mid-stream: {event['error']}")
                if event.get("usage"):
                    u = event["usage"]
                    usage = Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0))
                for choice in event.get("choices") or []:
                    text = (
                        (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    )
                    if text:
                        parts.append(text)
                        yield Chunk(text=text)
                    finish = choice.get("finish_reason") or finish
        except httpx.TimeoutException as exc:
            raise BackendError(f"{self.base_url}{path} timed out mid-reply", status=504) from exc
        except (httpx.TransportError, json.JSONDecodeError) as exc:
            raise BackendError(
                f"{self.base_url}{path} broke off mid-reply: {exc}", status=502
            ) from exc
        finally:
            resp.close()
        if usage is None:
            usage = Usage(self.count_tokens(json.dumps(body)), self.count_tokens("".join(parts)))
        yield Chunk(finish_reason="length" if finish == "length" else "stop", usage=usage)

    def models(self) -> list[str]:
        """Model ids the endpoint lists."""
        try:
            resp = self.client.get(self.base_url + "/models")
            resp.raise_for_status()
            return [m["id"] for m in resp.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise BackendError(f"{self.base_url}/models failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def upstream_message(text: str) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the raw text."""
    try:
        err = json.loads(text).get("error")
        return str(err.get("message", err)) if isinstance(err, dict) else str(err or text)
    except (ValueError, AttributeError):
        return text


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds form only)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
