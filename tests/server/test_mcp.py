"""``engram mcp`` through the ``mcp`` package's own client over stdio."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp.server.mcpserver")

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from engram_sdk.memory import Memory
from engram_sdk.sessions import Session


def _payload(result) -> object:
    assert not result.is_error, result
    if result.structured_content is not None:
        data = result.structured_content
        return data.get("result", data) if isinstance(data, dict) else data
    return json.loads(result.content[0].text)


def test_mcp_tools_search_context_add_and_sessions(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "widgets.py").write_text("x = 1\ndef frobnicate_widget(w):\n    return w\n")
    with Memory.open(uri) as mem:
        mem.ingest(tmp_path / "src", progress=False)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "engram_sdk.cli.main", "mcp", "--store", uri]
    )

    async def main() -> dict[str, object]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            out: dict[str, object] = {"tools": names}
            out["search"] = _payload(
                await session.call_tool("search", {"query": "frobnicate_widget"})
            )
            await session.call_tool(
                "add", {"text": "The build server is orion-7.", "source": "ops.md"}
            )
            out["context"] = _payload(
                await session.call_tool("context", {"query": "build server", "max_tokens": 60})
            )
            await session.call_tool(
                "session_append", {"session_id": "agent", "role": "user", "content": "hi there"}
            )
            out["show"] = _payload(await session.call_tool("session_show", {"session_id": "agent"}))
            return out

    out = asyncio.run(main())
    assert {"search", "context", "add", "session_append", "session_show", "sessions_list"} <= out[
        "tools"
    ]
    hits = out["search"]
    # oracle: the line the identifier is defined on, from the file itself
    lines = (tmp_path / "src" / "widgets.py").read_text().splitlines()
    assert hits[0]["source"].endswith("widgets.py")
    span = lines[hits[0]["line_start"] - 1 : hits[0]["line_end"]]
    assert any("def frobnicate_widget" in line for line in span)
    assert "orion-7" in out["context"]["text"]
    assert out["show"] == [{"seq": 0, "role": "user", "content": "hi there"}]
    with Memory.open(uri, "r") as mem:  # the writes are durable in the store
        assert [t.content for t in Session(mem, "agent").turns()] == ["hi there"]
