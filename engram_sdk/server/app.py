"""The FastAPI app of ``engram serve`` and the function that runs it under uvicorn.

FastAPI + uvicorn: pydantic schemas (already the SDK's boundary format) give validation and
the OpenAPI page at ``/docs`` for free, and SSE streams from a plain generator.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from engram_sdk._version import __version__
from engram_sdk.llm.base import Backend
from engram_sdk.llm.openai_async import AsyncUpstream
from engram_sdk.llm.openai_http import OpenAIBackend
from engram_sdk.server import errors
from engram_sdk.server.completions import router as completions_router
from engram_sdk.server.config import ServeConfig
from engram_sdk.server.fast_chat import ChatFastPath
from engram_sdk.server.guards import Auth, BodyLimit, GenerationGate
from engram_sdk.server.memory_routes import router as memory_router
from engram_sdk.server.openai_routes import router as openai_router
from engram_sdk.server.state import ServerState

if TYPE_CHECKING:
    from engram_sdk.memory import Memory

log = logging.getLogger("engram.serve")


def create_app(
    config: ServeConfig, *, backend: Backend, memory: Memory, owns_memory: bool = False
) -> FastAPI:
    """The app over an open backend and memory (the backend stays owned by the caller; the
    memory too unless ``owns_memory``: then the app closes it when it shuts down).

    An OpenAI-compatible backend is also read through one pooled async client, so proxied
    replies stream through without a thread per request."""
    state = ServerState(
        config=config,
        backend=backend,
        memory=memory,
        auth=Auth(config.keys, config.default_scope),
        gate=GenerationGate(config.max_concurrent),
        upstream=AsyncUpstream(backend) if isinstance(backend, OpenAIBackend) else None,
        owns_memory=owns_memory,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await state.aclose()

    app = FastAPI(
        title="engram serve",
        version=__version__,
        description="OpenAI-compatible chat with Engram memory, and the memory API.",
        lifespan=lifespan,
    )
    app.state.engram = state
    errors.install(app)
    app.include_router(openai_router)
    app.include_router(completions_router)
    app.include_router(memory_router)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    return app


def open_backend(config: ServeConfig) -> Backend:
    """The local model, or the upstream in proxy mode."""
    from engram_sdk.llm import load_backend

    if config.upstream:
        backend = OpenAIBackend(
            config.upstream,
            model=config.upstream_model or "default",
            api_key_env=config.upstream_key_env,
            context_length=config.context_length or 8192,
            timeout_s=config.upstream_timeout_s,
            max_retries=config.upstream_retries,
        )
        if config.upstream_model is None:
            listed = backend.models()
            backend.model = backend.name = listed[0] if listed else "default"
        return backend
    return load_backend(config.llm, context_length=config.context_length)


def serve(config: ServeConfig) -> None:
    """Open the memory and backend, then serve until interrupted."""
    import uvicorn

    from engram_sdk.memory import Memory

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    # httpx logs every upstream request at INFO: a line per proxied request, off the hot path
    logging.getLogger("httpx").setLevel(logging.WARNING)
    backend = open_backend(config)
    memory = Memory.open(config.store)
    try:
        app = create_app(config, backend=backend, memory=memory, owns_memory=True)
        keys = ", ".join(f"{g.fingerprint}→{'/'.join(g.scopes)}" for g in config.keys) or "none"
        log.info(
            "engram serve: %s model %s (%d-token window), memory %s, API keys %s, "
            "listening on http://%s:%d",
            config.mode,
            backend.name,
            backend.context_length,
            memory.store.uri,
            keys,
            config.host,
            config.port,
        )
        uvicorn.run(
            ChatFastPath(app),
            host=config.host,
            port=config.port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # nothing reads the client's address or scheme
            timeout_graceful_shutdown=config.shutdown_timeout_s,
        )
    finally:
        backend.close()
        memory.close()
