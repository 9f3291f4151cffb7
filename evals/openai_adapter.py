"""An OpenAI-compatible HTTP endpoint (``/v1/chat/completions`` or ``/v1/completions``).

Standard library only. The key comes from an environment variable; requests run
``concurrency`` at a time (the runner's thread pool); 429 and 5xx answers and connection
errors are retried with exponential backoff (``Retry-After`` honoured); other errors fail
at once with the server's message.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from engram_sdk.evals.adapters import EvalError
from engram_sdk.evals.length import TokenCounter
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import InputError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIAdapter:
    """Chat or completions over HTTP; greedy (temperature 0) with ``max_tokens`` from the task."""

    def __init__(
        self,
        model: str,
        base_url: str = "http://localhost:8000/v1",
        mode: str = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout_s: float = 300.0,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        max_context: int | None = None,
        token_counter: TokenCounter | None = None,
        name: str | None = None,
    ) -> None:
        if mode not in ("chat", "completions"):
            raise InputError(f"mode must be 'chat' or 'completions', got {mode!r}")
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"base URL {base_url!r} must start with http:// or https://")
        if concurrency < 1 or max_retries < 0:
            raise InputError("concurrency must be >= 1 and max_retries >= 0")
        self.model, self.mode = model, mode
        self.base_url = base_url.rstrip("/")
        self.api_key = os.environ.get(api_key_env, "")
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.max_context = max_context
        self.token_counter = token_counter
        self.name = name or f"openai-{mode}:{model}"
        self.retries = 0  # how many retries happened (for reports and tests)

    def payload(self, sample: Sample) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for ``sample``."""
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": 0.0,
            "max_tokens": sample.max_new_tokens,
        }
        if self.mode == "chat":
            # no assistant prefill in the chat API: the answer prefix ends the user turn
            body["messages"] = [{"role": "user", "content": sample.input + sample.answer_prefix}]
            return "/chat/completions", body
        body["prompt"] = sample.prompt
        return "/completions", body

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(
                self.base_url + path, data=data, headers=headers, method="POST"
            )
            wait = self.backoff_s * (2**attempt)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {exc.code}: {text}"
                if exc.code not in RETRY_STATUS:
                    raise EvalError(f"{self.base_url}{path} answered {last}") from exc
                ra = exc.headers.get("Retry-After") if exc.headers else None
                if ra and ra.replace(".", "", 1).isdigit():
                    wait = min(float(ra), 60.0)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            except json.JSONDecodeError as exc:
                raise EvalError(f"{self.base_url}{path} returned invalid JSON: {exc}") from exc
            if attempt < self.max_retries:
                self.retries += 1
                time.sleep(wait)
        raise EvalError(
            f"{self.base_url}{path} failed after {self.max_retries + 1} attempts ({last})"
        )

    def answer(self, sample: Sample) -> str:
        path, body = self.payload(sample)
        out = self._post(path, body)
        try:
            choice = out["choices"][0]
            text = choice["message"]["content"] if self.mode == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError) as exc:
            raise EvalError(
                f"unexpected response shape from {self.base_url}{path}: {str(out)[:200]}"
            ) from exc
        return text or ""
