"""``engram mcp``: the memory as Model Context Protocol tools for coding agents (stdio)."""

from engram_sdk.mcp.server import build_server, run_stdio

__all__ = ["build_server", "run_stdio"]
