"""A session's stored turns as chat messages, and a cache that keeps them between turns.

Reading a session parses every stored turn; a server answering the same sessions turn after
turn keeps them in a :class:`HistoryCache` instead. An entry is valid while the session's
record (read with the session: its creation time and turn count) is the one it was built
from; a turn stored by this process extends the entry, and one stored by anything else
(another process on the same store), or a session deleted and started again, makes the next
read start over.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engram_sdk.llm.base import Message

if TYPE_CHECKING:
    from engram_sdk.sessions import Session
    from engram_sdk.sessions.session import Turn


@dataclass
class _Entry:
    version: tuple[float, int]
    messages: list[Message]


def _version(session: Session) -> tuple[float, int]:
    info = session.info
    return (info.created, info.turns) if info is not None else (0.0, 0)


class HistoryCache:
    """Chat messages of recently used sessions (at most ``max_sessions``, least recent out)."""

    def __init__(self, *, max_sessions: int = 1024) -> None:
        self.max_sessions = max_sessions
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def messages(self, session: Session) -> list[Message]:
        """The session's non-system turns, in order (a copy the caller may keep)."""
        version = _version(session)
        with self._lock:
            entry = self._entries.get(session.key)
            if entry is not None and entry.version == version:
                self._entries.move_to_end(session.key)
                return list(entry.messages)
        turns = session.turns()
        messages = _as_messages(turns)
        with self._lock:
            self._entries[session.key] = _Entry((version[0], len(turns)), messages)
            self._entries.move_to_end(session.key)
            while len(self._entries) > self.max_sessions:
                self._entries.popitem(last=False)
        return list(messages)

    def appended(self, session: Session, messages: Sequence[Message]) -> None:
        """Note turns this process just stored in ``session`` (its info already updated)."""
        created, stored = _version(session)
        with self._lock:
            entry = self._entries.get(session.key)
            if entry is None:
                return
            if entry.version == (created, stored - len(messages)):
                entry.messages.extend(m for m in messages if m["role"] != "system")
                entry.version = (created, stored)
            else:
                del self._entries[session.key]


def _as_messages(turns: Sequence[Turn]) -> list[Message]:
    return [{"role": t.role, "content": t.content} for t in turns if t.role != "system"]


def session_history(
    session: Session | None, client: Sequence[Message], *, cache: HistoryCache | None = None
) -> list[Message]:
    """The conversation before the new message: the session's stored turns, unless the client
    sent a history the session does not end with (then the client's, as given)."""
    if session is None:
        return list(client)
    stored = cache.messages(session) if cache is not None else _as_messages(session.turns())
    if not client:
        return stored
    tail = stored[len(stored) - len(client) :] if len(client) <= len(stored) else None
    return stored if tail == list(client) else list(client)
