"""What ``engram serve`` runs with: a pydantic config, the API keys and their scopes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from engram_sdk.errors import ConfigError
from engram_sdk.llm.recall import RecallFormat

SERVE_CONFIG_VERSION = 1
KEYS_ENV = "ENGRAM_API_KEYS"


class KeyGrant(BaseModel):
    """One API key and the scopes it may read and write (the first is its default)."""

    key: str = Field(repr=False)
    scopes: list[str] = Field(min_length=1)

    @property
    def fingerprint(self) -> str:
        """A short digest to name the key in logs (never the key itself)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:8]


class ServeConfig(BaseModel):
    """Everything the server needs; built by ``engram serve`` from flags and the environment."""

    format_version: int = SERVE_CONFIG_VERSION
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    store: str | None = None
    llm: str | None = None
    upstream: str | None = None
    upstream_model: str | None = None
    upstream_key_env: str = "OPENAI_API_KEY"
    upstream_timeout_s: float = Field(default=120.0, gt=0)
    upstream_retries: int = Field(default=1, ge=0)
    context_length: int | None = Field(default=None, ge=64)
    keys: list[KeyGrant] = Field(default_factory=list, repr=False)
    ingest_roots: list[Path] = Field(default_factory=list)
    max_body_bytes: int = Field(default=4 << 20, ge=1024)
    max_concurrent: int = Field(default=4, ge=1)
    memory_tokens: int | None = Field(default=None, ge=0)
    memory_context: RecallFormat = "focus"
    #: on SIGTERM, replies still streaming get this long to finish before they are cut and
    #: the store (and its writer lock) is closed; uvicorn's default waits for them forever
    shutdown_timeout_s: float = Field(default=5.0, gt=0)
    default_scope: str = "default"

    @field_validator("ingest_roots")
    @classmethod
    def _resolve_roots(cls, roots: list[Path]) -> list[Path]:
        return [Path(r).expanduser().resolve() for r in roots]

    @property
    def mode(self) -> str:
        """``proxy`` with an upstream, else ``local``."""
        return "proxy" if self.upstream else "local"


def parse_keys(specs: list[str]) -> list[KeyGrant]:
    """``KEY=scope1,scope2`` items (also ``;``-separated in one string, as the env var holds)."""
    grants = []
    for spec in (part for s in specs for part in s.split(";")):
        spec = spec.strip()
        if not spec:
            continue
        key, sep, scopes = spec.partition("=")
        names = [s.strip() for s in scopes.split(",") if s.strip()]
        if not sep or not key.strip() or not names:
            raise ConfigError(
                "an API key grant must look like KEY=scope1,scope2 (got one without '=' or scopes)"
            )
        grants.append(KeyGrant(key=key.strip(), scopes=names))
    if len({g.key for g in grants}) != len(grants):
        raise ConfigError("the same API key is granted twice")
    return grants
