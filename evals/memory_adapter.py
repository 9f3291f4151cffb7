"""The memory pipeline as a model: ingest the haystack into a Memory, recall a context for
the question under a token budget, and let a reader model answer from it.

Each answer carries two numbers: ``recall`` (the fraction of references inside the recalled
context) and the reader's end-to-end score (computed by the runner as for any model).
"""

from __future__ import annotations

from typing import Any

from engram_sdk.evals.adapters import Adapter, Answer
from engram_sdk.evals.focus import focus
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.scoring import sample_match_all


class MemoryAdapter:
    """Memory-backed long-context answering with ``reader`` on a ``max_tokens`` context."""

    def __init__(
        self,
        reader: Adapter,
        max_tokens: int = 2000,
        uri: str = "dram://",
        name: str | None = None,
        *,
        focus: bool = False,
    ) -> None:
        from engram_sdk.memory import Memory  # noqa: F401  (fail early if missing)

        self.reader, self.max_tokens, self.uri, self.focus = reader, max_tokens, uri, focus
        tag = f"memory[{max_tokens}{',focus' if focus else ''}]"
        self.name = name or f"{tag}+{reader.name}"
        self.concurrency = 1
        self.token_counter = getattr(reader, "token_counter", None)

    def answer(self, sample: Sample) -> Answer:
        from engram_sdk.memory import Memory

        with Memory.open(self.uri) as mem:
            mem.add(sample.context, source=f"haystack-{sample.id}.txt")
            ctx = mem.context(sample.query, max_tokens=self.max_tokens)
        recalled = focus(ctx.text, sample.query) if self.focus else ctx.text
        a, b = sample.context_span
        text = sample.input[:a] + recalled + sample.input[b:]
        reduced = sample.model_copy(update={"input": text, "context_span": (a, a + len(recalled))})
        out = self.reader.answer(reduced)
        info: dict[str, Any] = {
            "recall": sample_match_all(recalled, sample.outputs),
            "context_tokens": ctx.tokens,
        }
        if isinstance(out, Answer):
            info.update(out.info)
            out = out.text
        return Answer(out, info)
