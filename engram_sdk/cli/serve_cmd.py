"""``engram serve`` (OpenAI-compatible, memory-augmented HTTP) and ``engram mcp`` (stdio)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def serve(
    llm: Annotated[
        str | None,
        typer.Option("--llm", help="local model: 'default', a .gguf, a HF folder or a checkpoint"),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option("--upstream", help="proxy to this OpenAI-compatible base URL (…/v1)"),
    ] = None,
    upstream_model: Annotated[str | None, typer.Option(help="upstream model id")] = None,
    upstream_key_env: Annotated[
        str, typer.Option(help="environment variable holding the upstream's key")
    ] = "OPENAI_API_KEY",
    upstream_timeout: Annotated[float, typer.Option(help="seconds per upstream call")] = 120.0,
    upstream_retries: Annotated[int, typer.Option(help="retries on upstream 429/5xx")] = 1,
    store: Annotated[
        str | None, typer.Option("--store", help="memory store URI (default: the user store)")
    ] = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind (0: any free port)")] = 8000,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="KEY=scope1,scope2 (repeatable; also $ENGRAM_API_KEYS, ';'-separated)",
        ),
    ] = None,
    ingest_root: Annotated[
        list[Path] | None, typer.Option("--ingest-root", help="folder clients may ingest from")
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body")] = 4 << 20,
    max_concurrent: Annotated[int, typer.Option(help="generations at once; beyond: 429")] = 4,
    context_length: Annotated[int | None, typer.Option(help="model window override")] = None,
    memory_tokens: Annotated[
        int | None, typer.Option(help="token budget of recalled passages per turn")
    ] = None,
    memory_context: Annotated[
        str, typer.Option(help="recalled text in the prompt: focus (cited lines) or passages")
    ] = "focus",
    shutdown_timeout: Annotated[
        float, typer.Option(help="seconds replies in flight get to finish on SIGTERM")
    ] = 5.0,
) -> None:
    """Serve /v1/chat/completions with memory, /v1/completions and the memory API."""
    from engram_sdk.server import ServeConfig, parse_keys
    from engram_sdk.server import serve as run

    grants = parse_keys([*(api_key or []), os.environ.get("ENGRAM_API_KEYS", "")])
    config = ServeConfig(
        host=host,
        port=port,
        store=store,
        llm=llm,
        upstream=upstream,
        upstream_model=upstream_model,
        upstream_key_env=upstream_key_env,
        upstream_timeout_s=upstream_timeout,
        upstream_retries=upstream_retries,
        keys=grants,
        ingest_roots=ingest_root or [],
        max_body_bytes=max_body_bytes,
        max_concurrent=max_concurrent,
        context_length=context_length,
        memory_tokens=memory_tokens,
        memory_context=memory_context,
        shutdown_timeout_s=shutdown_timeout,
    )
    run(config)


def mcp(
    store: Annotated[
        str | None, typer.Option("--store", help="memory store URI (default: the user store)")
    ] = None,
    scope: Annotated[str, typer.Option("--scope", help="default scope of the tools")] = "default",
) -> None:
    """Serve the memory as MCP tools over stdio (search, context, add, sessions)."""
    from engram_sdk.mcp import run_stdio

    run_stdio(store, scope=scope)


def register(app: typer.Typer) -> None:
    """Add ``engram serve`` and ``engram mcp``."""
    app.command()(serve)
    app.command()(mcp)
