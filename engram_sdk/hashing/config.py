"""The addressing configuration: everything that fixes an Engram address."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

HASHING_FORMAT_VERSION = 1
DEAD_ID = -1  # a position the look-back may not cross (pads, image spans); see block_dead


class NgramConfig(BaseModel):
    """Configuration of N-gram addressing (names follow deepseek-ai/Engram).

    ``vocab_size`` is the size of the canonical vocabulary the ids come from; it bounds
    the random multipliers so that ``id * multiplier`` never overflows int64.
    ``engram_vocab_size[i]`` is the table size for (i + 2)-grams; each head's modulus is a
    distinct prime found by searching upward from it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = HASHING_FORMAT_VERSION
    vocab_size: int = Field(gt=1, description="canonical vocabulary size")
    max_ngram_size: int = Field(default=3, ge=2, le=16)
    n_head_per_ngram: int = Field(default=8, ge=1)
    engram_vocab_size: list[int] = Field(default_factory=lambda: [129280 * 5, 129280 * 5])
    layer_ids: list[int] = Field(default_factory=lambda: [1, 15])
    pad_id: int = Field(default=2, ge=0, description="canonical id used left of the sequence")
    seed: int = Field(default=0, ge=0)
    block_dead: bool = Field(
        default=False,
        description="ids equal to DEAD_ID (-1) end the look-back: that position and every "
        "n-gram reaching past it hash pad_id instead (DeepSeek-V4.1's rule)",
    )

    @model_validator(mode="after")
    def _check(self) -> NgramConfig:
        if len(self.engram_vocab_size) != self.max_ngram_size - 1:
            raise ValueError(
                f"engram_vocab_size needs one table size per N-gram order 2..{self.max_ngram_size}"
                f" ({self.max_ngram_size - 1} values), got {len(self.engram_vocab_size)}"
            )
        if any(s < 2 for s in self.engram_vocab_size):
            raise ValueError(f"engram_vocab_size values must be >= 2, got {self.engram_vocab_size}")
        if len(set(self.layer_ids)) != len(self.layer_ids) or any(i < 0 for i in self.layer_ids):
            raise ValueError(f"layer_ids must be distinct and >= 0, got {self.layer_ids}")
        if self.pad_id >= self.vocab_size:
            raise ValueError(f"pad_id {self.pad_id} must be < vocab_size {self.vocab_size}")
        if self.format_version > HASHING_FORMAT_VERSION:
            raise ValueError(
                f"hashing config format_version {self.format_version} is newer than this "
                f"engram-sdk understands ({HASHING_FORMAT_VERSION}); upgrade engram-sdk"
            )
        return self

    @property
    def heads_total(self) -> int:
        """Heads per layer across all orders."""
        return (self.max_ngram_size - 1) * self.n_head_per_ngram
