"""The memory API for applications that don't speak Python: add, ingest, search, context,
sessions. Every call works in the request's scope, checked against its API key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request

from engram_sdk.server.errors import APIError
from engram_sdk.server.schemas import (
    AddRequest,
    AddResponse,
    ContextRequest,
    DeleteResponse,
    Health,
    IngestRequest,
    SearchRequest,
    SessionDetail,
    SessionSummary,
    TurnOut,
)
from engram_sdk.server.state import ServerState, state_of
from engram_sdk.sessions import Session

router = APIRouter()


@router.get("/health")
def health(request: Request) -> Health:
    """Liveness, the model served and its window (no key needed)."""
    state = state_of(request)
    return Health(
        model=state.backend.name,
        mode="proxy" if state.config.upstream else "local",
        context_length=state.backend.context_length,
    )


@router.post("/v1/memory/add")
def add(req: AddRequest, request: Request) -> AddResponse:
    """Store text as passages under ``source``."""
    state = state_of(request)
    scope = state.scope(request, req.scope)
    with state.write_lock:
        pids = state.memory.add(req.text, source=req.source, metadata=req.metadata, scope=scope)
    return AddResponse(passage_ids=pids)


@router.post("/v1/memory/ingest")
def ingest(req: IngestRequest, request: Request) -> dict[str, Any]:
    """Ingest a file or folder that lies under one of the server's ``--ingest-root`` folders."""
    state = state_of(request)
    scope = state.scope(request, req.scope)
    path = Path(req.path).expanduser().resolve()
    roots = state.config.ingest_roots
    if not roots:
        raise APIError(
            403,
            "ingest is off: the server was started without --ingest-root",
            code="ingest_disabled",
        )
    if not any(path == r or path.is_relative_to(r) for r in roots):
        raise APIError(
            403,
            f"{req.path} is not under an ingest root of this server",
            param="path",
            code="path_not_allowed",
        )
    if not path.exists():
        raise APIError(404, f"{req.path} does not exist", param="path")
    with state.write_lock:
        report = state.memory.ingest(path, scope=scope, progress=False)
    return report.model_dump()


@router.post("/v1/memory/search")
def search(req: SearchRequest, request: Request) -> list[dict[str, Any]]:
    """Hits with ``source``, ``line_start``, ``score`` and a snippet."""
    state = state_of(request)
    scope = state.scope(request, req.scope)
    with state.read_lock:
        hits = state.memory.search(req.query, k=req.k, scope=scope, match=req.match)
    return [h.model_dump() for h in hits]


@router.post("/v1/memory/context")
def context(req: ContextRequest, request: Request) -> dict[str, Any]:
    """The best passages assembled under ``max_tokens``."""
    state = state_of(request)
    scope = state.scope(request, req.scope)
    with state.read_lock:
        found = state.memory.context(req.query, max_tokens=req.max_tokens, scope=scope)
    return found.model_dump()


@router.get("/v1/sessions")
def list_all(request: Request, scope: str | None = Query(default=None)) -> list[SessionSummary]:
    """Sessions of the scope."""
    from engram_sdk.sessions import list_sessions

    state = state_of(request)
    chosen = state.scope(request, scope)
    return [
        SessionSummary(id=i.id, scope=i.scope, turns=i.turns, created=i.created)
        for i in list_sessions(state.memory, chosen)
    ]


def existing_session(
    state: ServerState, request: Request, session_id: str, scope: str | None
) -> Session:
    """The session a request names in its key's scope; 404 when it does not exist."""
    session = state.session(session_id, state.scope(request, scope))
    if session is None or session.info is None:
        raise APIError(404, f"no session {session_id!r} in this scope", code="session_not_found")
    return session


@router.get("/v1/sessions/{session_id}")
def show(
    session_id: str, request: Request, scope: str | None = Query(default=None)
) -> SessionDetail:
    """A session and its turns."""
    state = state_of(request)
    session = existing_session(state, request, session_id, scope)
    turns = [
        TurnOut(
            seq=t.seq, role=t.role, content=t.content, timestamp=t.timestamp, metadata=t.metadata
        )
        for t in session.turns()
    ]
    info = session.info
    return SessionDetail(
        id=info.id, scope=info.scope, turns=info.turns, created=info.created, messages=turns
    )


@router.delete("/v1/sessions/{session_id}")
def delete(
    session_id: str, request: Request, scope: str | None = Query(default=None)
) -> DeleteResponse:
    """Delete a session, its turns and their remembered passages."""
    state = state_of(request)
    session = existing_session(state, request, session_id, scope)
    with state.write_lock:
        return DeleteResponse(deleted_turns=session.delete())
