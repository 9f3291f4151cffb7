"""Sessions: conversations that persist across processes and recall earlier ones."""

from engram_sdk.sessions.group_commit import GroupCommit
from engram_sdk.sessions.session import (
    Session,
    SessionInfo,
    Turn,
    import_session,
    list_sessions,
)

__all__ = ["GroupCommit", "Session", "SessionInfo", "Turn", "import_session", "list_sessions"]
