"""Planning one chat turn for the server: the session, the history and the recall.

Reading the session and recalling passages touch the store and can take milliseconds, so
they run on the server's thread pool, never on the event loop; a turn with neither a session
nor memory is planned in place (it only sums cached token counts).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from engram_sdk.llm.augment import AugmentedTurn, Plan, plan_turn, start_turn, store_turn
from engram_sdk.llm.base import Message, SamplingOptions
from engram_sdk.server.state import ServerState
from engram_sdk.sessions import Session


@dataclass
class PreparedTurn:
    """A planned turn: the prompt, the session it continues and what the client sees of it."""

    plan: Plan
    session: Session | None
    scope: str
    user_text: str

    def meta(self) -> dict[str, Any]:
        """The ``engram`` field of the reply: citations, session, scope, history kept."""
        return {
            "citations": [c.label for c in self.plan.citations],
            "session_id": self.session.id if self.session else None,
            "scope": self.scope,
            "history_turns": self.plan.history_kept,
        }


def _plan(
    state: ServerState,
    session_id: str | None,
    scope: str,
    messages: list[Message],
    options: SamplingOptions,
    use_memory: bool,
) -> PreparedTurn:
    session = state.session(session_id, scope)
    if session is not None:
        scope = session.scope
    plan = plan_turn(
        state.backend,
        memory=state.memory if use_memory else None,
        messages=messages,
        session=session,
        scope=scope,
        options=options,
        memory_tokens=state.config.memory_tokens,
        history_cache=state.history,
        context=state.config.memory_context,
        recall_cache=state.recalls,
    )
    return PreparedTurn(plan, session, scope, messages[-1]["content"])


async def prepare_turn(
    state: ServerState,
    *,
    session_id: str | None,
    scope: str,
    messages: list[Message],
    options: SamplingOptions,
    use_memory: bool,
) -> PreparedTurn:
    """The planned turn; store work and recall on the thread pool, beside no memory write."""
    if session_id is None and not use_memory:
        return _plan(state, session_id, scope, messages, options, use_memory)

    def planned() -> PreparedTurn:
        with state.read_lock:
            return _plan(state, session_id, scope, messages, options, use_memory)

    return await state.off_loop(planned)


def local_turn(state: ServerState, turn: PreparedTurn, options: SamplingOptions) -> AugmentedTurn:
    """Start the local backend on a planned turn (stored in its session when complete)."""
    return start_turn(
        state.backend,
        turn.plan,
        options=options,
        session=turn.session,
        user_text=turn.user_text,
        write_lock=state.write_lock,
        history_cache=state.history,
    )


async def store_reply(
    state: ServerState, turn: PreparedTurn, text: str, finish_reason: str | None
) -> None:
    """Store a proxied turn's user message and reply in its session (nothing without one);
    returns once committed, in a group commit with other requests' turns
    (:class:`~engram_sdk.sessions.GroupCommit`)."""
    session = turn.session
    if session is None:
        return
    done = AugmentedTurn(plan=turn.plan, chunks=iter(()), text=text)
    done.finish_reason = "length" if finish_reason == "length" else "stop"

    def write() -> None:
        store_turn(session, turn.user_text, done, history_cache=state.history)

    await asyncio.wrap_future(state.commits.submit(write))
