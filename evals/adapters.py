"""Model adapters: every model is measured through ``answer(sample) -> str | Answer``.

Built here: a Python callable, the oracle and empty references, the built-in engram model
checkpoint and Hugging Face ``transformers`` models (local files, GGUF included). The
OpenAI-compatible HTTP client lives in :mod:`engram_sdk.evals.openai_adapter` and the
memory pipeline in :mod:`engram_sdk.evals.memory_adapter`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engram_sdk.evals.length import HFCounter, TiktokenCounter, TokenCounter
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import EngramError, InputError, MissingDependencyError


class EvalError(EngramError):
    """A model could not answer (server error after retries, bad response, ...)."""


@dataclass
class Answer:
    """A prediction with optional extra numbers (e.g. the memory pipeline's recall)."""

    text: str
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """What the runner needs from a model."""

    name: str
    concurrency: int

    def answer(self, sample: Sample) -> str | Answer: ...


def counter_of(adapter: Any) -> TokenCounter | None:
    """The token counter a model declares (its own tokenizer), if any."""
    return getattr(adapter, "token_counter", None)


class CallableAdapter:
    """Wraps ``fn(prompt) -> str`` (``takes="prompt"``: input + answer prefix) or
    ``fn(sample) -> str`` (``takes="sample"``)."""

    def __init__(
        self,
        fn: Callable[[Any], str],
        name: str = "callable",
        takes: str = "prompt",
        concurrency: int = 1,
    ) -> None:
        if takes not in ("prompt", "sample"):
            raise InputError(f"takes must be 'prompt' or 'sample', got {takes!r}")
        self.fn, self.name, self.takes, self.concurrency = fn, name, takes, concurrency

    def answer(self, sample: Sample) -> str:
        out = self.fn(sample.prompt if self.takes == "prompt" else sample)
        if not isinstance(out, str):
            raise EvalError(f"model {self.name!r} returned {type(out).__name__}, expected str")
        return out


class EmptyAdapter:
    """Answers nothing: every score is 0 (a floor for sanity checks)."""

    name = "empty"
    concurrency = 1

    def answer(self, sample: Sample) -> str:
        return ""


from engram_sdk.evals.oracle import OracleAdapter  # noqa: E402,F401  (moved; re-exported)


class HFAdapter:
    """A Hugging Face causal LM, greedy decoding, on CPU by default.

    Chat models get their chat template with the answer prefix opening the assistant turn
    (as RULER runs chat models); ``gguf_file`` loads a GGUF checkpoint through transformers.
    """

    def __init__(
        self,
        model: str,
        gguf_file: str | None = None,
        device: str = "cpu",
        chat: bool | None = None,
        dtype: str = "float32",
        name: str | None = None,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                "HF models need transformers: pip install 'engram-sdk[hf]'"
            ) from exc
        kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, **kw)
            self.model = AutoModelForCausalLM.from_pretrained(
                model, dtype=getattr(torch, dtype), **kw
            )
        except (OSError, ValueError) as exc:
            raise InputError(
                f"cannot load the HF model {model!r} ({gguf_file or 'no gguf'}): {exc}"
            ) from exc
        self.model.to(device).eval()
        self.device = device
        self.chat = bool(self.tokenizer.chat_template) if chat is None else chat
        self.name = name or f"hf:{gguf_file or model}"
        self.concurrency = 1
        self.token_counter = HFCounter(self.tokenizer, gguf_file or model)
        self.max_context = getattr(self.model.config, "max_position_embeddings", None)
        self._lock = threading.Lock()
        # tokens the chat template adds around a prompt; sample lengths include them
        self.template_tokens = 0
        if self.chat:
            probe = "x"
            wrapped = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": probe}], add_generation_prompt=True, tokenize=False
            )
            self.template_tokens = self.token_counter.count(wrapped) - self.token_counter.count(
                probe
            )

    def render(self, sample: Sample) -> str:
        """The exact text the model reads."""
        if not self.chat:
            return sample.prompt
        head = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": sample.input}], add_generation_prompt=True, tokenize=False
        )
        return head + sample.answer_prefix.lstrip()

    def answer(self, sample: Sample) -> str:
        import torch

        ids = self.tokenizer(
            self.render(sample), return_tensors="pt", add_special_tokens=False
        ).input_ids
        with self._lock, torch.inference_mode():
            out = self.model.generate(
                ids.to(self.device),
                attention_mask=torch.ones_like(ids).to(self.device),
                max_new_tokens=sample.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


class EngramModelAdapter:
    """The built-in engram model, loaded from a checkpoint folder (greedy decoding)."""

    def __init__(self, checkpoint: str, device: str = "cpu", name: str | None = None) -> None:
        try:
            from engram_sdk.model import load_checkpoint
        except ImportError as exc:
            raise MissingDependencyError(f"the built-in model is not available: {exc}") from exc
        from engram_sdk.tokenizer import get_tokenizer

        self.model = load_checkpoint(checkpoint, device=device)
        encoding = getattr(getattr(self.model, "config", None), "tokenizer", None) or "cl100k_base"
        self.tok = get_tokenizer(encoding)
        self.token_counter: TokenCounter = TiktokenCounter(encoding)
        self.name = name or f"engram:{checkpoint}"
        self.concurrency = 1
        self.max_context = getattr(getattr(self.model, "config", None), "max_seq_len", None)

    def answer(self, sample: Sample) -> str:
        ids = self.tok.encode(sample.prompt)
        new = self.model.generate(
            ids, max_new_tokens=sample.max_new_tokens, temperature=0.0, stop=[[self.tok.eot_id]]
        )
        return self.tok.decode([i for i in new if i != self.tok.eot_id])
