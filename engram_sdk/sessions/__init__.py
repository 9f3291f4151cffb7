"""Sessions: conversations that persist across processes and recall earlier ones."""

from engram_sdk.sessions.session import (
    Session,
    SessionInfo,
    Turn,
    import_session,
    list_sessions,
)

__all__ = ["Session", "SessionInfo", "Turn", "import_session", "list_sessions"]
