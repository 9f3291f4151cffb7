"""The memory pipeline as a model: ingest the haystack into a Memory, recall a context for
the question under a token budget, arrange it (:mod:`engram_sdk.evals.focus`) and let a
reader model answer from it.

Each answer carries two numbers: ``recall`` (the fraction of references inside the recalled
context) and the reader's end-to-end score (computed by the runner as for any model).
"""

from __future__ import annotations

from typing import Any

from engram_sdk.evals.focus import ContextMode, arrange, sub_queries
from engram_sdk.evals.protocol import Adapter, Answer, BaseAdapter, as_adapter
from engram_sdk.evals.sample import Sample
from engram_sdk.evals.scoring import sample_match_all


class MemoryAdapter(BaseAdapter):
    """Memory-backed long-context answering with ``reader`` on a ``max_tokens`` context.

    The memory path reads any length (``max_context`` is ``None``); lengths are counted with
    the reader's tokenizer and chat template, as the reader would read the whole prompt. A
    list query (several keys) is recalled key by key, each with an equal share of the budget.
    """

    def __init__(
        self,
        reader: Adapter,
        max_tokens: int = 2000,
        uri: str = "dram://",
        name: str | None = None,
        *,
        context: ContextMode = "passages",
    ) -> None:
        from engram_sdk.memory import Memory  # noqa: F401  (fail early if missing)

        self.reader = as_adapter(reader)
        self.max_tokens, self.uri, self.context = max_tokens, uri, context
        arrange("", "", context)  # an unknown mode fails here, not at the first sample
        tag = f"memory[{max_tokens}{'' if context == 'passages' else ',' + context}]"
        self.name = name or f"{tag}+{reader.name}"
        self.token_counter = reader.token_counter
        self.template_tokens = reader.template_tokens

    def answer(self, sample: Sample) -> Answer:
        from engram_sdk.memory import Memory

        queries = sub_queries(sample.query)
        share = max(1, self.max_tokens // len(queries))
        with Memory.open(self.uri) as mem:
            mem.add(sample.context, source=f"haystack-{sample.id}.txt")
            contexts = [mem.context(q, max_tokens=share) for q in queries]
        text = "\n".join(c.text for c in contexts)
        recalled = arrange(text, sample.query, self.context)
        a, b = sample.context_span
        text = sample.input[:a] + recalled + sample.input[b:]
        reduced = sample.model_copy(update={"input": text, "context_span": (a, a + len(recalled))})
        out = self.reader.answer(reduced)
        info: dict[str, Any] = {
            "recall": sample_match_all(recalled, sample.outputs),
            "context_tokens": sum(c.tokens for c in contexts),
        }
        if isinstance(out, Answer):
            info.update(out.info)
            out = out.text
        return Answer(out, info)
