"""The built-in engram MoE model, loaded from a checkpoint folder (``engram train`` writes them)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from engram_sdk.errors import InputError, MissingDependencyError
from engram_sdk.llm.base import (
    Backend,
    Chunk,
    Message,
    SamplingOptions,
    StopScanner,
    Usage,
)
from engram_sdk.llm.template import PLAIN, ChatTemplate


class EngramModelBackend(Backend):
    """Decodes with the model's latent cache; messages are rendered as ``role: content`` lines.

    The model has no chat training of its own, so the template is plain text; its end-of-text
    token ends a reply.
    """

    def __init__(self, checkpoint: str | Path, *, device: str = "cpu", name: str | None = None):
        try:
            from engram_sdk.model import load_checkpoint
        except ImportError as exc:
            raise MissingDependencyError(f"the built-in model is not available: {exc}") from exc
        from engram_sdk.tokenizer import get_tokenizer

        folder = Path(checkpoint)
        if not (folder / "config.json").is_file():
            raise InputError(f"{folder} is not an engram model checkpoint (no config.json)")
        self.model = load_checkpoint(folder, device=device)
        self.config = self.model.config
        self.tokenizer = get_tokenizer(self.config.tokenizer or "cl100k_base")
        self.name = name or f"engram:{folder.name}"
        self.template = ChatTemplate(PLAIN)
        self.is_chat = False
        self._lock = threading.Lock()

    @property
    def context_length(self) -> int:
        """The model's ``max_seq_len``."""
        return int(self.config.max_seq_len)

    def count_tokens(self, text: str) -> int:
        """Tokens in the model's tiktoken encoding."""
        return self.tokenizer.count(text)

    def render(self, messages: Sequence[Message]) -> str:
        """``role: content`` paragraphs ending in ``assistant:``."""
        return self.template.render(messages)

    def _stream_prompt(self, prompt: str, options: SamplingOptions) -> Iterator[Chunk]:
        ids = self.tokenizer.encode(prompt) or [self.tokenizer.eot_id]
        budget = self.context_length - len(ids)
        if budget < 1:
            raise InputError(
                f"prompt of {len(ids)} tokens does not fit the {self.context_length}-token window"
            )
        return self._decode(ids, options, min(options.max_tokens, budget))

    def _decode(self, ids: list[int], options: SamplingOptions, max_tokens: int) -> Iterator[Chunk]:
        scanner = StopScanner(options.stop)
        eot = self.tokenizer.eot_id
        produced: list[int] = []
        finish = "length"
        with self._lock:
            for token in self.model.stream(
                ids,
                max_new_tokens=max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                stop=[[eot]],
            ):
                if token == eot:
                    finish = "stop"
                    break
                produced.append(token)
                # decode the whole reply each step: a token may end inside a UTF-8 character
                text = self.tokenizer.decode(produced)
                emitted = self.tokenizer.decode(produced[:-1])
                out = scanner.feed(text[len(emitted) :])
                if out:
                    yield Chunk(text=out)
                if scanner.stopped:
                    finish = "stop"
                    break
        tail = scanner.flush()
        if tail:
            yield Chunk(text=tail)
        usage = Usage(prompt_tokens=len(ids), completion_tokens=len(produced))
        yield Chunk(finish_reason="stop" if finish == "stop" else "length", usage=usage)
