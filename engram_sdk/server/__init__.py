"""``engram serve``: OpenAI-compatible chat with memory, and the memory API, over HTTP."""

from engram_sdk.server.app import create_app, open_backend, serve
from engram_sdk.server.config import KeyGrant, ServeConfig, parse_keys

__all__ = ["KeyGrant", "ServeConfig", "create_app", "open_backend", "parse_keys", "serve"]
