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

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engram_sdk.errors import InputError
from engram_sdk.llm.base import Backend, Chunk, FinishReason, Message, SamplingOptions, Usage
from engram_sdk.llm.counting import PromptCounter, counter_for
from engram_sdk.llm.history import HistoryCache, session_history
from engram_sdk.llm.recall import Citation, RecallFormat, clip_head, recall_passages
from engram_sdk.llm.recall_cache import RecallCache

if TYPE_CHECKING:
    from engram_sdk.memory import Memory
    from engram_sdk.sessions import Session

MEMORY_INSTRUCTION = (
    "Answer the question using the passages from memory given with it when they are "
    "relevant. Cite them as [source:line]."
)
QUESTION = "Question: "
OMITTED_NOTE = "({n} earlier turns of this conversation are not shown.)"
#: the prompt format of recalled text unless a caller asks for another
DEFAULT_FORMAT: RecallFormat = "focus"


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
    history_cache: HistoryCache | None = None

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
    history_cache: HistoryCache | None = None,
    context: RecallFormat = DEFAULT_FORMAT,
    recall_cache: RecallCache | None = None,
) -> AugmentedTurn:
    """Plan the prompt for ``messages`` (see the module docs) and start generating.

    ``messages`` ends with the new user message; earlier non-system messages are the client's
    history. With a ``session``, the session's stored turns are the history unless the
    client sends a history the session does not end with (then the client's is used as
    given), and the new user turn and the reply are stored when the reply completes.
    ``memory_tokens`` caps the recalled passages (default: a quarter of the window);
    ``write_lock`` serialises the store write with other writers of the same memory;
    ``history_cache`` keeps sessions' stored turns between calls (a server passes one);
    ``context`` is how recalled text is written into the prompt (``"focus"``: the cited
    lines holding the question's terms; ``"passages"``: whole passages); ``recall_cache``
    reuses recalls while the scope is unchanged (:mod:`engram_sdk.llm.recall_cache`).
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
        history_cache=history_cache,
        context=context,
        recall_cache=recall_cache,
    )
    return start_turn(
        backend,
        plan,
        options=options,
        session=session,
        user_text=messages[-1]["content"],
        write_lock=write_lock,
        history_cache=history_cache,
    )


def start_turn(
    backend: Backend,
    plan: Plan,
    *,
    options: SamplingOptions,
    session: Session | None,
    user_text: str,
    write_lock: AbstractContextManager[Any] | None = None,
    history_cache: HistoryCache | None = None,
    context: RecallFormat = DEFAULT_FORMAT,
) -> AugmentedTurn:
    """Start generating the reply to a planned turn (stored in ``session`` when complete)."""
    turn = AugmentedTurn(plan=plan, chunks=iter(()))
    sampling = SamplingOptions(
        max_tokens=plan.max_tokens,
        temperature=options.temperature,
        top_p=options.top_p,
        stop=options.stop,
    )
    turn.chunks = _run(backend, turn, sampling, session, user_text, write_lock or nullcontext())
    turn.history_cache = history_cache
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
            store_turn(session, user_text, turn, history_cache=turn.history_cache)


def store_turn(
    session: Session,
    user_text: str,
    turn: AugmentedTurn,
    *,
    history_cache: HistoryCache | None = None,
) -> None:
    """Append the user message and the reply in one transaction."""
    meta: dict[str, Any] = {
        "citations": [c.label for c in turn.citations],
        "finish_reason": turn.finish_reason,
    }
    with session.memory.store.transaction():
        session.append("user", user_text)
        session.append("assistant", turn.text, metadata=meta)
    if history_cache is not None:
        history_cache.appended(
            session,
            [{"role": "user", "content": user_text}, {"role": "assistant", "content": turn.text}],
        )


def plan_turn(
    backend: Backend,
    *,
    memory: Memory | None,
    messages: Sequence[Message],
    session: Session | None,
    scope: str,
    options: SamplingOptions,
    memory_tokens: int | None,
    history_cache: HistoryCache | None = None,
    context: RecallFormat = DEFAULT_FORMAT,
    recall_cache: RecallCache | None = None,
) -> Plan:
    """Choose history, passages and the reply budget so the prompt fits the window.

    Sizes are sums of cached per-message counts (:mod:`engram_sdk.llm.counting`); the
    rendered prompt is counted exactly only when the estimate comes near the window.
    ``recall_cache`` keeps recalls while the scope is unchanged (a server passes one).
    """
    counter = counter_for(backend)
    window = backend.context_length
    reply = max(1, min(options.max_tokens, window // 2))
    available = window - reply
    system = [m for m in messages[:-1] if m["role"] in ("system", "developer")]
    client_history = [m for m in messages[:-1] if m["role"] not in ("system", "developer")]
    history = session_history(session, client_history, cache=history_cache)
    user: Message = {"role": "user", "content": messages[-1]["content"]}
    budget = 0 if memory is None else min(memory_tokens or window // 4, available // 2)
    kept = _fit_history(counter, system, history, user, budget, available)
    recalled_tokens, block, citations = 0, "", []
    if memory is not None and budget > 0:
        first_kept_seq = len(history) - kept if session is not None else None
        got = recall_passages(
            backend,
            memory,
            query=user["content"],
            scope=scope,
            budget=budget,
            session=session,
            first_kept_seq=first_kept_seq,
            context=context,
            cache=recall_cache,
        )
        recalled_tokens, block, citations = got.tokens, got.block, got.citations
    final = _assemble(system, block, history, kept, user)
    size = _size(counter, final, recalled_tokens, block)
    if size > available:
        size = counter.exact(final)
    if size > available:
        block, citations = "", []
        final = _assemble(system, block, history, kept, user)
        size = counter.exact(final)
    if size > available:
        user = {"role": "user", "content": clip_head(backend, user["content"], available // 2)}
        final = _assemble(system, block, history, kept, user)
        size = counter.exact(final)
    return Plan(
        messages=final,
        citations=citations,
        history_kept=kept,
        history_dropped=len(history) - kept,
        prompt_tokens=size,
        max_tokens=max(1, min(options.max_tokens, window - size)),
    )


def _size(counter: PromptCounter, final: list[Message], recalled: int, block: str) -> int:
    """The prompt's tokens: an estimate with its margin (the block counted as ``recalled``
    tokens), or the exact count when that estimate does not leave the window room."""
    if counter.exact_only:
        return counter.exact(final)
    user = final[-1]
    body = user["content"][len(block) :] if block else user["content"]
    guess = counter.estimate(final[:-1]) + counter.message({"role": "user", "content": body})
    if block:
        guess += recalled + 2
    return guess + counter.margin(len(final))


def _fit_history(
    counter: PromptCounter,
    system: list[Message],
    history: list[Message],
    user: Message,
    budget: int,
    available: int,
) -> int:
    """How many of the most recent turns fit beside the system notes, the passages' budget
    and the user message (by cached counts; the oldest go first)."""
    fixed = counter.estimate([*system, user]) + budget + counter.margin(len(system) + 2)
    fixed += counter.text(MEMORY_INSTRUCTION) + counter.text(OMITTED_NOTE) + 8
    kept, used = 0, fixed
    for message in reversed(history):
        cost = counter.message(message) + 2
        if used + cost > available:
            break
        used += cost
        kept += 1
    return kept


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
