"""The saved form of one eval sample; its id is a hash of its content."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

SAMPLE_FORMAT_VERSION = 2


class Sample(BaseModel):
    """One prompt with its references.

    ``input`` is the prompt up to the answer prefix; a completion model continues
    ``input + answer_prefix``. ``context_span`` marks the haystack inside ``input`` (what the
    memory pipeline ingests) and ``query`` is what it recalls with.
    """

    format_version: int = SAMPLE_FORMAT_VERSION
    id: str = ""
    task: str
    base_task: str = Field(description="RULER's base task: niah, variable_tracking, qa, ...")
    length: int = Field(
        description="RULER's length: measured prompt tokens + tokens to generate "
        "(chat template excluded)"
    )
    length_w_model_temp: int = Field(description="length + the chat template's tokens")
    target_length: int = Field(description="the length asked for (prompt + generation budget)")
    index: int
    seed: int
    input: str
    answer_prefix: str
    outputs: list[str]
    metric: str
    max_new_tokens: int
    counter: str
    query: str
    context_span: tuple[int, int]
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def tokens(self) -> int:
        """Tokens the model's window must hold: template + prompt + generation budget."""
        return self.length_w_model_temp

    @property
    def prompt(self) -> str:
        """The full completion prompt: ``input + answer_prefix``."""
        return self.input + self.answer_prefix

    @property
    def context(self) -> str:
        """The haystack part of ``input``."""
        a, b = self.context_span
        return self.input[a:b]

    def content_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of everything the model sees and is scored on."""
        body = json.dumps(
            [
                self.task,
                self.input,
                self.answer_prefix,
                self.outputs,
                self.metric,
                self.max_new_tokens,
            ],
            ensure_ascii=False,
        )
        return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]

    def with_id(self) -> Sample:
        """This sample with ``id`` set to its content hash."""
        self.id = self.content_hash()
        return self
