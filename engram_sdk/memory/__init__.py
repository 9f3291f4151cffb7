"""Episodic memory: ingest text and codebases, recall by exact N-gram lookups, assemble contexts."""

from engram_sdk.memory.memory import Memory, default_uri
from engram_sdk.memory.models import Context, Hit, IngestReport, MemoryManifest, Passage

__all__ = ["Context", "Hit", "IngestReport", "Memory", "MemoryManifest", "Passage", "default_uri"]
