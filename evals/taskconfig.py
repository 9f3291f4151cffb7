"""What a generator is handed: one task instance's template, budget and metric.

As in RULER, a task instance (``niah_single_2``) is a base task (``niah``) plus parameters;
the template, answer prefix and generation budget are looked up by base task in one table,
the metric in another, and the generator receives them ready-made — it never looks them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engram_sdk.evals.length import ReservingCounter, TokenCounter
from engram_sdk.evals.sample import Sample


def template_reserve(counter: TokenCounter) -> int:
    """Tokens a counter adds for the model's chat template (RULER's ``model_template_token``)."""
    return counter.reserve if isinstance(counter, ReservingCounter) else 0


@dataclass(frozen=True)
class TaskConfig:
    """One task instance, resolved: everything a generator needs besides length and seed."""

    name: str
    base: str
    params: dict[str, Any]
    template: str
    answer_prefix: str
    tokens_to_generate: int
    metric: str
    extras: tuple[str, ...] = field(default=())

    @property
    def head_and_tail(self) -> tuple[str, str]:
        """The template's text before and after ``{context}``."""
        head, tail = self.template.split("{context}")
        return head, tail

    def sample(
        self,
        *,
        target_length: int,
        index: int,
        seed: int,
        counter: TokenCounter,
        prompt_tokens: int,
        input: str,
        answer_prefix: str,
        outputs: list[str],
        query: str,
        context_span: tuple[int, int],
        meta: dict[str, Any],
    ) -> Sample:
        """A sample of this task; ``prompt_tokens`` is ``counter``'s count of input + prefix.

        ``length`` is RULER's: measured prompt tokens + tokens to generate, without the chat
        template; ``length_w_model_temp`` adds the template's tokens.
        """
        reserve = template_reserve(counter)
        length = prompt_tokens - reserve + self.tokens_to_generate
        return Sample(
            task=self.name,
            base_task=self.base,
            length=length,
            length_w_model_temp=length + reserve,
            target_length=target_length,
            index=index,
            seed=seed,
            input=input,
            answer_prefix=answer_prefix,
            outputs=outputs,
            metric=self.metric,
            max_new_tokens=self.tokens_to_generate,
            counter=counter.name,
            query=query,
            context_span=context_span,
            meta=meta,
        ).with_id()
