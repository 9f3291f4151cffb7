"""What every request handler shares: the backend, the memory, the guards, the write lock,
the pooled upstream client (proxy mode), the sessions' cached history, the recall cache, the
group commit of session turns and the thread pool that runs recall off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from fastapi import Request

from engram_sdk.llm.base import Backend
from engram_sdk.llm.history import HistoryCache
from engram_sdk.llm.openai_async import AsyncUpstream
from engram_sdk.llm.recall_cache import RecallCache
from engram_sdk.memory.write_gate import WriteGate
from engram_sdk.server.config import ServeConfig
from engram_sdk.server.errors import APIError
from engram_sdk.server.guards import Auth, GenerationGate
from engram_sdk.sessions import GroupCommit, Session

if TYPE_CHECKING:
    from engram_sdk.memory import Memory

T = TypeVar("T")
SESSION_HEADER = "x-session-id"
SCOPE_HEADER = "x-engram-scope"


@dataclass
class ServerState:
    """One per app; handlers read it from ``request.app.state.engram``."""

    config: ServeConfig
    backend: Backend
    memory: Memory
    auth: Auth
    gate: GenerationGate
    upstream: AsyncUpstream | None = None
    #: recalls and memory reads hold ``.reading()``, writes the gate itself: a recall reads the
    #: memory in several steps that no write may interleave (:mod:`engram_sdk.memory.write_gate`)
    memory_lock: WriteGate = field(default_factory=WriteGate)
    history: HistoryCache = field(default_factory=HistoryCache)
    recalls: RecallCache = field(default_factory=RecallCache)
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="recall")
    )
    #: close the memory at shutdown (``engram serve`` does: uvicorn ends the process by
    #: re-raising SIGTERM once the app has shut down, so code after ``uvicorn.run`` never runs)
    owns_memory: bool = False
    #: session turns of concurrent requests committed together (under :attr:`write_lock`)
    commits: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.commits = GroupCommit(self.memory, lock=self.write_lock)

    @property
    def write_lock(self) -> AbstractContextManager[None]:
        """Held around every write to the memory (alone: no recall runs meanwhile)."""
        return self.memory_lock

    @property
    def read_lock(self) -> AbstractContextManager[None]:
        """Held around recalls and other reads of the memory (many at once)."""
        return self.memory_lock.reading()

    async def off_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the server's thread pool (store reads, recall, store writes)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    async def aclose(self) -> None:
        """Close the upstream's connections and the thread pool; with :attr:`owns_memory`,
        then the memory, once no session write is under way, so its writer lock is free for
        the next server or CLI as soon as shutdown ends."""
        if self.upstream is not None:
            await self.upstream.aclose()
        await asyncio.to_thread(self.commits.close)  # what is queued is committed first
        await asyncio.to_thread(self.pool.shutdown, wait=True)  # recall takes milliseconds
        if self.owns_memory:
            await asyncio.to_thread(self._close_memory)

    def _close_memory(self) -> None:
        with self.write_lock:
            self.memory.close()

    @property
    def model_ids(self) -> list[str]:
        """Names a request may use for the model."""
        return [self.backend.name]

    def check_model(self, model: str) -> None:
        """404 for a model this server does not serve."""
        if model not in self.model_ids and model != "default":
            raise APIError(
                404,
                f"model {model!r} does not exist here; this server serves {self.model_ids[0]!r}",
                param="model",
                code="model_not_found",
            )

    def scope(self, request: Request, asked: str | None = None) -> str:
        """The request's scope: asked (header or body), checked against its API key."""
        return self.scope_of(request.headers, asked)

    def scope_of(self, headers: Mapping[str, str], asked: str | None = None) -> str:
        """:meth:`scope` from the request's (case-insensitive) ``headers``."""
        return self.auth.scope_for(headers.get("authorization"), headers.get(SCOPE_HEADER) or asked)

    def session(self, session_id: str | None, scope: str) -> Session | None:
        """The session a request continues (None: no session, nothing stored)."""
        if not session_id:
            return None
        try:
            return Session(self.memory, session_id, scope=scope)
        except ValueError as exc:
            raise APIError(400, f"session id: {exc}", param="session_id") from exc


def state_of(request: Request) -> ServerState:
    """The shared state of the app serving ``request``."""
    return request.app.state.engram
