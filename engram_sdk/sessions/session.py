"""Conversations that persist: turns appended durably, recalled across sessions, resumable.

Sessions build on :class:`~engram_sdk.memory.Memory` through its public methods (``add``,
``search``, ``passages``, ``delete``, ``store``, ``tokenizer``); memory never imports
sessions. Each turn's text is remembered with ``Memory.add``, whose index merges segments
as they accumulate, so a long session keeps search latency flat.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from engram_sdk.errors import InputError
from engram_sdk.memory import Hit, Memory
from engram_sdk.memory.memory import check_label

SESSION_FORMAT_VERSION = 1
META, TURNS = "sess.meta", "sess.turn"
Role = Literal["system", "user", "assistant", "tool"]


class Turn(BaseModel):
    """One message of a conversation."""

    seq: int
    role: Role
    content: str
    token_ids: list[int]
    timestamp: float
    metadata: dict[str, Any] = Field(default_factory=dict)


class SessionInfo(BaseModel):
    """What a session is, for listings and the JSONL header."""

    format_version: int = SESSION_FORMAT_VERSION
    id: str
    scope: str
    created: float
    turns: int = 0


def session_key(scope: str, session_id: str) -> bytes:
    """Record key of a session: ids are data, never file names."""
    return scope.encode() + b"\x00" + session_id.encode()


def check_session_id(session_id: object) -> str:
    """A label (see ``check_label``) without ``/`` or ``..``: ids look like names, not paths."""
    check_label("session id", session_id)
    assert isinstance(session_id, str)
    if "/" in session_id or ".." in session_id:
        raise InputError(f"session id {session_id!r} must not contain '/' or '..'")
    return session_id


class Session:
    """A conversation in a :class:`Memory`; created on first use, resumed afterwards."""

    def __init__(self, memory: Memory, session_id: str, *, scope: str = "default") -> None:
        self.memory = memory
        self.id = check_session_id(session_id)
        self.scope = check_label("scope", scope)
        self.key = session_key(scope, session_id)
        raw = memory.store.get(META, self.key)
        self.info = SessionInfo.model_validate_json(raw) if raw else None

    @property
    def exists(self) -> bool:
        """Whether the session has been stored (it is created by its first turn)."""
        return self.memory.store.get(META, self.key) is not None

    @property
    def source(self) -> str:
        """Source name under which this session's turns are remembered."""
        return f"session:{self.id}"

    def append(
        self,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None = None,
        token_ids: Sequence[int] | None = None,
    ) -> Turn:
        """Append one turn durably (it is committed when this returns) and remember it."""
        if role not in ("system", "user", "assistant", "tool"):
            raise InputError(f"role must be system, user, assistant or tool, got {role!r}")
        if not isinstance(content, str):
            raise InputError("content must be str")
        store = self.memory.store
        with self.memory.transaction():
            # the stored count, read inside the write transaction, allocates the sequence
            # number: another live Session object of the same id may have appended since
            raw = store.get(META, self.key)
            self.info = (
                SessionInfo.model_validate_json(raw)
                if raw
                else SessionInfo(id=self.id, scope=self.scope, created=time.time())
            )
            ids = (
                list(token_ids) if token_ids is not None else self.memory.tokenizer.encode(content)
            )
            turn = Turn(
                seq=self.info.turns,
                role=role,
                content=content,
                token_ids=ids,
                timestamp=time.time(),
                metadata=metadata or {},
            )
            store.put(
                TURNS,
                self.key + b"\x00" + turn.seq.to_bytes(8, "big"),
                turn.model_dump_json().encode(),
            )
            self.info.turns += 1
            store.put(META, self.key, self.info.model_dump_json().encode())
            if content.strip():
                self.memory.add(
                    content,
                    source=self.source,
                    scope=self.scope,
                    metadata={"session": self.id, "role": role, "seq": turn.seq},
                )
        return turn

    def turns(self) -> list[Turn]:
        """Every turn, in order."""
        return [
            Turn.model_validate_json(v)
            for _, v in self.memory.store.scan(TURNS, self.key + b"\x00")
        ]

    def recall(
        self,
        query: str,
        k: int = 5,
        sources: Sequence[str] | None = None,
        include_self: bool = False,
    ) -> list[Hit]:
        """Passages from earlier sessions in this scope (and ``sources``, if given) relevant to ``query``."""
        hits = self.memory.search(query, k=k * 4, scope=self.scope)
        out = []
        for h in hits:
            mine = h.source == self.source
            other_session = h.source.startswith("session:") and not mine
            allowed = sources is not None and h.source in sources
            if other_session or allowed or (include_self and mine):
                out.append(h)
        return out[:k]

    def context_for(self, message: str, max_tokens: int = 1000, k: int = 5) -> str:
        """Recalled passages to offer a model alongside ``message``."""
        hits = self.recall(message, k=k)
        parts, total = [], 0
        for h in hits:
            (p,) = self.memory.passages(self.memory.scope_id(self.scope) or 0, [h.passage_id])
            if p is None:
                continue
            block = f"[{h.source}] {p.text.strip()}"
            n = self.memory.tokenizer.count(block)
            if total + n > max_tokens:
                break
            parts.append(block)
            total += n
        return "\n".join(parts)

    def prompt_ids(self) -> list[int]:
        """Token ids of the whole conversation, the deterministic state a model resumes from."""
        return [i for t in self.turns() for i in t.token_ids]

    def generate(self, model: Any, max_new_tokens: int = 64, **kwargs: Any) -> Turn:
        """Continue the conversation with the built-in model; the reply is appended as a turn.

        The model's state is rebuilt from the stored token ids (a deterministic prefill), so a
        resumed session continues exactly as an uninterrupted one would.
        """
        new_ids = model.generate(self.prompt_ids(), max_new_tokens=max_new_tokens, **kwargs)
        text = self.memory.tokenizer.decode(new_ids)
        return self.append("assistant", text, metadata={"generated": True}, token_ids=new_ids)

    def delete(self) -> int:
        """Remove the session, its turns and their remembered passages."""
        store = self.memory.store
        with self.memory.transaction():
            keys = [k for k, _ in store.scan(TURNS, self.key + b"\x00")]
            store.delete_many(TURNS, keys)
            store.delete(META, self.key)
            self.memory.delete(source=self.source, scope=self.scope)
        self.info = None
        return len(keys)

    def export(self, path: str | Path) -> int:
        """Write a JSONL file: a header line, then one line per turn."""
        raw = self.memory.store.get(META, self.key)
        if raw is None:
            raise InputError(f"session {self.id!r} does not exist in scope {self.scope!r}")
        self.info = SessionInfo.model_validate_json(raw)
        if not isinstance(path, str | os.PathLike):
            raise InputError(f"path must be a str or os.PathLike naming a file, got {path!r}")
        folder = Path(path).expanduser().resolve().parent
        if not folder.is_dir():
            raise InputError(f"cannot export to {path}: folder {folder} does not exist")
        lines = [json.dumps({"header": self.info.model_dump()})]
        lines += [t.model_dump_json() for t in self.turns()]
        Path(path).write_text("\n".join(lines) + "\n")
        return len(lines) - 1


def list_sessions(memory: Memory, scope: str | None = None) -> Iterator[SessionInfo]:
    """Every session (of one scope, if given)."""
    prefix = scope.encode() + b"\x00" if scope is not None else b""
    for _, raw in memory.store.scan(META, prefix):
        yield SessionInfo.model_validate_json(raw)


def import_session(
    memory: Memory, path: str | Path, session_id: str | None = None, scope: str | None = None
) -> Session:
    """Read a JSONL export into a new session (the format version is checked)."""
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read session export {path}: {exc}") from None
    try:
        header = SessionInfo.model_validate(json.loads(lines[0])["header"])
    except (IndexError, KeyError, ValueError) as exc:
        raise InputError(f"{path} is not a session export (no header line)") from exc
    if header.format_version > SESSION_FORMAT_VERSION:
        raise InputError(
            f"{path} has session format {header.format_version}, newer than "
            f"{SESSION_FORMAT_VERSION}; upgrade engram-sdk"
        )
    session = Session(memory, session_id or header.id, scope=scope or header.scope)
    if session.info is not None:
        raise InputError(f"session {session.id!r} already exists in scope {session.scope!r}")
    with memory.transaction():
        for line in lines[1:]:
            if line.strip():
                t = Turn.model_validate_json(line)
                session.append(t.role, t.content, t.metadata, t.token_ids)
    return session
