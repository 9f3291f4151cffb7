"""What the eval runner needs from a model: the :class:`Adapter` protocol, its defaults
(:class:`BaseAdapter`) and the :class:`Answer` a model may return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engram_sdk.evals.length import TokenCounter
from engram_sdk.evals.sample import Sample

from engram_sdk.errors import EngramError, InputError


class EvalError(EngramError):
    """A model could not answer (server error after retries, bad response, ...)."""


@dataclass
class Answer:
    """A prediction with optional extra numbers (e.g. the memory pipeline's recall)."""

    text: str
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """What the runner needs from a model.

    ``max_context``: the model's window in tokens (``None``: no limit, e.g. the memory
    pipeline); ``token_counter``: its own tokenizer (``None``: lengths are counted with
    cl100k_base); ``template_tokens``: tokens its chat template wraps around a prompt
    (sample lengths include them). :class:`BaseAdapter` gives the defaults.
    """

    name: str
    concurrency: int
    max_context: int | None
    token_counter: TokenCounter | None
    template_tokens: int

    def answer(self, sample: Sample) -> str | Answer: ...


class BaseAdapter:
    """Defaults for an :class:`Adapter`: one request at a time, no window, no own tokenizer."""

    name: str = "model"
    concurrency: int = 1
    max_context: int | None = None
    token_counter: TokenCounter | None = None
    template_tokens: int = 0

    def answer(self, sample: Sample) -> str | Answer:
        """The model's reply to ``sample`` (its prompt is ``sample.prompt``)."""
        raise NotImplementedError


ADAPTER_FIELDS = "name, concurrency, max_context, token_counter, template_tokens and answer()"


def as_adapter(model: object) -> Adapter:
    """``model`` if it is an :class:`Adapter`, else an error saying what an adapter needs."""
    if not isinstance(model, Adapter):
        raise InputError(
            f"{type(model).__name__} is not an eval model: an adapter has {ADAPTER_FIELDS} "
            "(subclass engram_sdk.evals.BaseAdapter, or wrap a function in CallableAdapter)"
        )
    return model
