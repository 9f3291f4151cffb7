"""MCP tools over a :class:`~engram_sdk.memory.Memory`: search, context, add and sessions.

A thin layer: every tool is one call of the Python API. Results are JSON-shaped dicts
(the pydantic models' dumps) so agents read ``source`` and ``line_start`` directly.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal

from engram_sdk.errors import MissingDependencyError
from engram_sdk.sessions import Session

if TYPE_CHECKING:
    from engram_sdk.memory import Memory

INSTRUCTIONS = (
    "Engram memory of this user's codebases, documents and conversations. Use `search` to "
    "find where an identifier or phrase occurs (source:line), `context` for the best "
    "passages on a question under a token budget, `add` to remember text, and the session "
    "tools to keep and read a conversation."
)


def build_server(memory: Memory, *, default_scope: str = "default") -> Any:
    """An ``mcp`` MCPServer whose tools read and write ``memory``."""
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError as exc:
        raise MissingDependencyError(
            "engram mcp needs the mcp package (version 2): pip install 'engram-sdk[mcp]'"
        ) from exc
    from engram_sdk.sessions import list_sessions

    server = MCPServer("engram", instructions=INSTRUCTIONS)
    write = threading.Lock()

    @server.tool()
    def search(
        query: str,
        k: int = 10,
        scope: str = default_scope,
        match: Literal["phrase", "words"] = "phrase",
    ) -> list[dict[str, Any]]:
        """Where a phrase or identifier occurs: source, line_start, score, snippet.
        match="words" ranks passages by the query's words instead (a question, several names)."""
        hits = memory.search(query, k=k, scope=scope, match=match)
        return [h.model_dump() for h in hits]

    @server.tool()
    def context(query: str, max_tokens: int = 1000, scope: str = default_scope) -> dict[str, Any]:
        """The best passages for a question with their sources, under a token budget."""
        return memory.context(query, max_tokens=max_tokens, scope=scope).model_dump()

    @server.tool()
    def add(text: str, source: str = "mcp", scope: str = default_scope) -> dict[str, Any]:
        """Remember text under a source name; returns the passage ids."""
        with write:
            return {"passage_ids": memory.add(text, source=source, scope=scope)}

    @server.tool()
    def session_append(
        session_id: str, role: str, content: str, scope: str = default_scope
    ) -> dict[str, Any]:
        """Append a turn (role: user, assistant, system or tool) to a session, durably."""
        with write:
            turn = Session(memory, session_id, scope=scope).append(role, content)  # type: ignore[arg-type]
        return {"seq": turn.seq}

    @server.tool()
    def session_show(session_id: str, scope: str = default_scope) -> list[dict[str, Any]]:
        """A session's turns in order."""
        return [
            {"seq": t.seq, "role": t.role, "content": t.content}
            for t in Session(memory, session_id, scope=scope).turns()
        ]

    @server.tool()
    def sessions_list(scope: str = default_scope) -> list[dict[str, Any]]:
        """Sessions of a scope with their turn counts."""
        return [i.model_dump() for i in list_sessions(memory, scope)]

    return server


def run_stdio(store: str | None = None, *, scope: str = "default") -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    from engram_sdk.memory import Memory

    with Memory.open(store) as memory:
        build_server(memory, default_scope=scope).run("stdio")
