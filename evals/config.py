"""One run of the harness as data: what the CLI builds and :func:`engram_sdk.evals.run` takes.

A :class:`RunConfig` is saved beside the report (``run-config.json``), so a run can be read
back and repeated exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from engram_sdk.evals.models import ModelOptions
from pydantic import BaseModel, Field, field_validator

RUN_CONFIG_FORMAT_VERSION = 1
DEFAULT_DEPTHS = (0.0, 25.0, 50.0, 75.0, 100.0)
MIN_LENGTH = 256


class RunConfig(BaseModel):
    """Everything one ``engram eval ruler|niah`` run needs."""

    format_version: int = RUN_CONFIG_FORMAT_VERSION
    kind: Literal["ruler", "niah"]
    model: str = Field(description="model spec, e.g. gguf:/path/model.gguf or openai:name")
    model_options: ModelOptions = Field(default_factory=ModelOptions)
    tasks: list[str] = Field(default_factory=lambda: ["ruler"])
    lengths: list[int] = Field(default_factory=lambda: [4096])
    depths: list[float] = Field(default_factory=lambda: list(DEFAULT_DEPTHS))
    n_samples: int = Field(default=10, ge=1)
    seed: int = 42
    tokenizer: str = "model"
    haystack: str | None = None
    needles: list[str] = Field(default_factory=list)
    question: str | None = None
    answers: list[str] = Field(default_factory=list)
    qa_files: dict[str, str] = Field(default_factory=dict)
    remove_newline_tab: bool = False
    judge: str | None = Field(default=None, description="model spec of a NIAH judge")
    workers: int = Field(default=0, ge=0, description="generation processes (0: all cores)")
    out_dir: Path = Path("eval-out")
    force: bool = False
    progress: bool = True

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != RUN_CONFIG_FORMAT_VERSION:
            raise ValueError(f"run config format {v}, expected {RUN_CONFIG_FORMAT_VERSION}")
        return v

    @field_validator("lengths")
    @classmethod
    def _long_enough(cls, v: list[int]) -> list[int]:
        if not v or min(v) < MIN_LENGTH:
            raise ValueError(f"lengths must be >= {MIN_LENGTH} tokens, got {v}")
        return sorted(set(v))

    @field_validator("depths")
    @classmethod
    def _in_range(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 <= d <= 100 for d in v):
            raise ValueError(f"depths must be percentages within [0, 100], got {v}")
        return v


def build_config(**fields: object) -> RunConfig:
    """A :class:`RunConfig`; invalid fields raise :class:`InputError` naming them."""
    from pydantic import ValidationError

    from engram_sdk.errors import InputError

    try:
        return RunConfig.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"invalid eval run: {problems}") from None
