"""Memory-augmented generation: the one path chat, ``engram serve`` and MCP generate through.

For one turn (:func:`augmented_turn`):

1. the query is the last user message;
2. passages are recalled from the session's scope (ingested files and documents, earlier
   sessions, this session's turns that no longer fit the window) under a token budget;
3. they go into the prompt next to the question, where even a 135M model copies from them
   (format documented in docs/llm.md): a system instruction, then the new user message as::

       Passages from memory:

       [path/to/file.py:12-20]
       <passage text>

       [session:other-chat:1-1]
       <passage text>

       Question: <the user's message>

4. the conversation is kept inside the model's window: the oldest turns are dropped first
   (they stay in memory and can be recalled), then the recalled passages, and at last the
   head of an over-long user message, so a session never wedges;
5. when the reply is complete the user turn and the reply are appended to the session in one
   transaction (a failed generation stores nothing);
6. the result names the passages that were in the prompt (:attr:`AugmentedTurn.citations`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engram_sdk.errors import InputError
from engram_sdk.llm.base import Backend, Chunk, FinishReason, Message, SamplingOptions, Usage

if TYPE_CHECKING:
    from engram_sdk.memory import Memory
    from engram_sdk.memory.models import Passage
    from engram_sdk.sessions import Session

MEMORY_INSTRUCTION = (
    "Answer the question using the passages from memory given with it when they are "
    "relevant. Cite them as [source:line]."
)
MEMORY_HEADER = "Passages from memory:"
QUESTION = "Question: "
OMITTED_NOTE = "({n} earlier turns of this conversation are not shown.)"


@dataclass(frozen=True)
class Citation:
    """A passage that was in the prompt."""

    source: str
    line_start: int
    line_end: int
    score: float
    passage_id: int

    @property
    def label(self) -> str:
        """``source:start-end`` as the prompt writes it."""
        return f"{self.source}:{self.line_start}-{self.line_end}"


@dataclass
class Plan:
    """The prompt for one turn and what went into it."""

    messages: list[Message]
    citations: list[Citation]
    history_kept: int
    history_dropped: int
    prompt_tokens: int
    max_tokens: int


@dataclass
class AugmentedTurn:
    """A reply being generated; iterate for its chunks; the turn is stored at the end."""

    plan: Plan
    chunks: Iterator[Chunk]
    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage = field(default_factory=Usage)

    @property
    def citations(self) -> list[Citation]:
        """Passages that were in the prompt."""
        return self.plan.citations

    def __iter__(self) -> Iterator[Chunk]:
        return self.chunks

    def complete(self) -> AugmentedTurn:
        """Consume the whole reply."""
        for _ in self.chunks:
            pass
        return self


def augmented_turn(
    backend: Backend,
    *,
    memory: Memory | None,
    messages: Sequence[Message],
    session: Session | None = None,
    scope: str = "default",
    options: SamplingOptions | None = None,
    memory_tokens: int | None = None,
    use_memory: bool = True,
    write_lock: AbstractContextManager[Any] | None = None,
) -> AugmentedTurn:
    """Plan the prompt for ``messages`` (see the module docs) and start generating.

    ``messages`` ends with the new user message; earlier non-system messages are the client's
    history. With a ``session``, the session's stored turns are the history unless the
    client sends a history the session does not end with (then the client's is used as
    given), and the new user turn and the reply are stored when the reply completes.
    ``memory_tokens`` caps the recalled passages (default: a quarter of the window);
    ``write_lock`` serialises the store write with other writers of the same memory.
    """
    options = options or SamplingOptions()
    if not messages or messages[-1]["role"] != "user":
        raise InputError("the last message must be the user's")
    if session is not None:
        scope = session.scope
    plan = plan_turn(
        backend,
        memory=memory if use_memory else None,
        messages=messages,
        session=session,
        scope=scope,
        options=options,
        memory_tokens=memory_tokens,
    )
    turn = AugmentedTurn(plan=plan, chunks=iter(()))
    sampling = SamplingOptions(
        max_tokens=plan.max_tokens,
        temperature=options.temperature,
        top_p=options.top_p,
        stop=options.stop,
    )
    turn.chunks = _run(
        backend, turn, sampling, session, messages[-1]["content"], write_lock or nullcontext()
    )
    return turn


def _run(
    backend: Backend,
    turn: AugmentedTurn,
    options: SamplingOptions,
    session: Session | None,
    user_text: str,
    write_lock: AbstractContextManager[Any],
) -> Iterator[Chunk]:
    parts: list[str] = []
    for chunk in backend.stream(turn.plan.messages, options=options):
        parts.append(chunk.text)
        if chunk.finish_reason is not None:
            turn.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            turn.usage = chunk.usage
        yield chunk
    turn.text = "".join(parts)
    if session is not None:
        with write_lock:
            store_turn(session, user_text, turn)


def store_turn(session: Session, user_text: str, turn: AugmentedTurn) -> None:
    """Append the user message and the reply in one transaction."""
    meta: dict[str, Any] = {
        "citations": [c.label for c in turn.citations],
        "finish_reason": turn.finish_reason,
    }
    with session.memory.store.transaction():
        session.append("user", user_text)
        session.append("assistant", turn.text, metadata=meta)


def session_history(session: Session | None, client: Sequence[Message]) -> list[Message]:
    """The conversation before the new message (see :func:`augmented_turn`)."""
    if session is None:
        return list(client)
    stored: list[Message] = [
        {"role": t.role, "content": t.content} for t in session.turns() if t.role != "system"
    ]
    if not client:
        return stored
    tail = stored[len(stored) - len(client) :] if len(client) <= len(stored) else None
    return stored if tail == list(client) else list(client)


def plan_turn(
    backend: Backend,
    *,
    memory: Memory | None,
    messages: Sequence[Message],
    session: Session | None,
    scope: str,
    options: SamplingOptions,
    memory_tokens: int | None,
) -> Plan:
    """Choose history, passages and the reply budget so the prompt fits the window."""
    window = backend.context_length
    reply = max(1, min(options.max_tokens, window // 2))
    available = window - reply
    system = [m for m in messages[:-1] if m["role"] in ("system", "developer")]
    client_history = [m for m in messages[:-1] if m["role"] not in ("system", "developer")]
    history = session_history(session, client_history)
    user: Message = {"role": "user", "content": messages[-1]["content"]}
    budget = 0 if memory is None else min(memory_tokens or window // 4, available // 2)

    def count(kept: int, memory_block: str, user_msg: Message) -> int:
        return backend.count_tokens(
            backend.render(_assemble(system, memory_block, history, kept, user_msg))
        )

    reserve = "x " * budget  # stands in for the passages while history is chosen
    kept = _fit_history(len(history), lambda k: count(k, reserve, user) <= available)
    dropped = len(history) - kept
    first_kept_seq = len(history) - kept if session is not None else None
    block, citations = "", []
    if memory is not None and budget > 0:
        block, citations = recall_block(
            backend,
            memory,
            query=user["content"],
            scope=scope,
            budget=budget,
            session=session,
            first_kept_seq=first_kept_seq,
        )
    if count(kept, block, user) > available:
        block, citations = "", []
    if count(kept, block, user) > available:
        user = {"role": "user", "content": _clip_head(backend, user["content"], available // 2)}
    final = _assemble(system, block, history, kept, user)
    prompt_tokens = backend.count_tokens(backend.render(final))
    return Plan(
        messages=final,
        citations=citations,
        history_kept=kept,
        history_dropped=dropped,
        prompt_tokens=prompt_tokens,
        max_tokens=max(1, min(options.max_tokens, window - prompt_tokens)),
    )


def _assemble(
    system: list[Message], block: str, history: list[Message], kept: int, user: Message
) -> list[Message]:
    notes = [m["content"] for m in system]
    if block:
        notes.insert(0, MEMORY_INSTRUCTION)
        user = {"role": "user", "content": f"{block}\n\n{QUESTION}{user['content']}"}
    if kept < len(history):
        notes.append(OMITTED_NOTE.format(n=len(history) - kept))
    head: list[Message] = [{"role": "system", "content": "\n\n".join(notes)}] if notes else []
    return [*head, *history[len(history) - kept :], user]


def _fit_history(n: int, fits: Any) -> int:
    """The most recent turns (a count) that fit; binary search, since fewer always fit."""
    if fits(n):
        return n
    lo, hi = 0, n  # fits(lo) assumed, fits(hi) false
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _clip_head(backend: Backend, text: str, tokens: int) -> str:
    """The end of ``text`` in about ``tokens`` tokens."""
    keep = len(text)
    while keep > 0 and backend.count_tokens(text[-keep:]) > tokens:
        keep = keep * 3 // 4
    return text[-keep:] if keep else ""


def _clip_around(backend: Backend, lines: list[str], query: str, tokens: int) -> tuple[int, int]:
    """The widest run of whole ``lines`` around the line sharing most words with ``query``.

    Line costs are counted once and summed (a newline costs one token), so this is linear.
    """
    words = {w for w in re.findall(r"\w+", query.lower()) if len(w) > 2}
    at = max(
        range(len(lines)), key=lambda i: len(words & set(re.findall(r"\w+", lines[i].lower())))
    )
    cost = [backend.count_tokens(line) + 1 for line in lines]
    lo, hi, used = at, at + 1, cost[at]
    while True:
        if hi < len(lines) and used + cost[hi] <= tokens:
            used += cost[hi]
            hi += 1
        elif lo > 0 and used + cost[lo - 1] <= tokens:
            lo -= 1
            used += cost[lo]
        else:
            return lo, hi


def _excerpt(backend: Backend, passage: Passage, query: str, tokens: int) -> tuple[Passage, str]:
    """The passage, or its lines around the query's best line when it is over ``tokens``."""
    label = f"[{passage.source}:{passage.line_start}-{passage.line_end}]"
    text = f"{label}\n{passage.text.strip()}"
    if backend.count_tokens(text) <= tokens:
        return passage, text
    lines = passage.text.splitlines()
    lo, hi = _clip_around(backend, lines, query, tokens - 16)
    first, last = passage.line_start + lo, passage.line_start + hi - 1
    body = _clip_head(backend, "\n".join(lines[lo:hi]), tokens - 16)
    text = f"[{passage.source}:{first}-{last}]\n{body}"
    return passage.model_copy(update={"line_start": first, "line_end": last}), text


def recall_block(
    backend: Backend,
    memory: Memory,
    *,
    query: str,
    scope: str,
    budget: int,
    session: Session | None = None,
    first_kept_seq: int | None = None,
    k: int = 20,
) -> tuple[str, list[Citation]]:
    """Recalled passages in the prompt format, at most ``budget`` tokens, and their citations.

    Passages of ``session`` itself are left out when they are still in the prompt (turns
    from ``first_kept_seq`` on).
    """
    sid = memory.scope_id(scope)
    if sid is None or not query.strip():
        return "", []
    hits = memory.search(query, k=k, scope=scope)
    passages = memory.passages(sid, [h.passage_id for h in hits])
    own = session.source if session is not None else None
    parts = [MEMORY_HEADER]
    used = backend.count_tokens(MEMORY_HEADER)
    per_passage = max(48, budget // 3)
    citations: list[Citation] = []
    for hit, passage in zip(hits, passages, strict=True):
        if passage is None:
            continue
        if own is not None and passage.source == own:
            seq = passage.metadata.get("seq")
            if first_kept_seq is None or not isinstance(seq, int) or seq >= first_kept_seq:
                continue
        room = min(per_passage, budget - used) - 16
        if room < 8:
            break
        passage, text = _excerpt(backend, passage, query, room)
        n = backend.count_tokens(text) + 2
        if used + n > budget:
            continue
        parts.append(text)
        used += n
        citations.append(
            Citation(
                passage.source, passage.line_start, passage.line_end, hit.score, hit.passage_id
            )
        )
    if not citations:
        return "", []
    return "\n\n".join(parts), citations
