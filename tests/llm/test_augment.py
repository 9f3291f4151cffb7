"""Memory-augmented generation with the offline default model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engram_sdk.llm import SamplingOptions, augmented_turn, load_backend
from engram_sdk.llm.llamacpp import LlamaCppBackend, default_model_path
from engram_sdk.memory import Memory
from engram_sdk.sessions import Session

QUESTION = "What is the vault code of Heron?"
CODE = "QX-7731-B"


@pytest.fixture(scope="module")
def backend() -> Iterator[LlamaCppBackend]:
    b = load_backend()
    assert isinstance(b, LlamaCppBackend)
    yield b
    b.close()


@pytest.fixture
def memory() -> Iterator[Memory]:
    with Memory.open("dram://") as mem:
        yield mem


def test_a_fact_only_in_an_ingested_document_is_answered_through_memory_and_not_without(
    backend: LlamaCppBackend, memory: Memory, tmp_path
) -> None:
    (tmp_path / "heron.md").write_text(
        "Project Heron notes.\nThe vault code of Heron is QX-7731-B.\nRotate it monthly.\n"
    )
    (tmp_path / "ferry.md").write_text("The ferry to Lundy leaves at 07:45 from Bideford.\n")
    memory.ingest(tmp_path, progress=False)
    opts = SamplingOptions(max_tokens=24)
    question = [{"role": "user", "content": QUESTION}]
    with_memory = augmented_turn(backend, memory=memory, messages=question, options=opts)
    without = augmented_turn(
        backend, memory=memory, messages=question, options=opts, use_memory=False
    )
    assert CODE in with_memory.complete().text
    assert CODE not in without.complete().text
    cited = [c.source for c in with_memory.citations]
    assert str(tmp_path / "heron.md") in cited
    # the citation's lines hold the fact, as a reread of the file shows
    c = next(c for c in with_memory.citations if c.source.endswith("heron.md"))
    lines = (tmp_path / "heron.md").read_text().splitlines()[c.line_start - 1 : c.line_end]
    assert any(CODE in line for line in lines)
    assert without.citations == []


def test_prompt_carries_passages_in_the_documented_format(
    backend: LlamaCppBackend, memory: Memory
) -> None:
    memory.add("Line one.\nThe badge number is 88231.\n", source="badges.txt")
    turn = augmented_turn(
        backend,
        memory=memory,
        messages=[{"role": "user", "content": "What is the badge number?"}],
        options=SamplingOptions(max_tokens=1),
        context="passages",
    )
    user = turn.plan.messages[-1]["content"]
    assert user.startswith("Passages from memory:\n\n[badges.txt:1-2]\nLine one.\n")
    assert user.endswith("\n\nQuestion: What is the badge number?")
    assert [c.label for c in turn.citations] == ["badges.txt:1-2"]


def test_focus_prompt_carries_the_matching_lines_as_cited_lines_best_last(
    backend: LlamaCppBackend, memory: Memory
) -> None:
    memory.add("Line one.\nThe badge number is 88231.\nBadges expire.\n", source="badges.txt")
    memory.add("class BadgeReader:\n    pass\n", source="pkg/reader.py")
    memory.add("from pkg.reader import BadgeReader\n", source="pkg/app.py")
    ask = [{"role": "user", "content": "What is the badge number?"}]
    turn = augmented_turn(
        backend, memory=memory, messages=ask, options=SamplingOptions(max_tokens=1)
    )
    user = turn.plan.messages[-1]["content"]
    # the one line holding both "badge" and "number", cited as file:line, then the question
    assert user == (
        "Passages from memory:\n\nbadges.txt:2: The badge number is 88231.    (in badges.txt)"
        "\n\nQuestion: What is the badge number?"
    )
    assert [c.label for c in turn.citations] == ["badges.txt:2-2"]
    # a line defining the asked code name outranks one that only mentions it
    ask = [{"role": "user", "content": "Where is BadgeReader?"}]
    turn = augmented_turn(
        backend, memory=memory, messages=ask, options=SamplingOptions(max_tokens=1)
    )
    assert [c.label for c in turn.citations] == ["pkg/reader.py:1-1"]
    shown = "pkg/reader.py:1: class BadgeReader:    (in pkg/reader.py)\n\nQuestion:"
    assert shown in turn.plan.messages[-1]["content"]


def test_turns_are_stored_only_once_the_reply_is_complete(
    backend: LlamaCppBackend, memory: Memory
) -> None:
    session = Session(memory, "s")
    turn = augmented_turn(
        backend,
        memory=memory,
        session=session,
        messages=[{"role": "user", "content": "Say hello."}],
        options=SamplingOptions(max_tokens=4),
    )
    chunks = iter(turn)
    next(chunks)
    assert session.turns() == []  # nothing stored mid-reply
    for _ in chunks:
        pass
    stored = [(t.role, t.content) for t in Session(memory, "s").turns()]
    assert stored == [("user", "Say hello."), ("assistant", turn.text)]


def test_a_session_ten_times_longer_than_the_window_keeps_answering(memory: Memory) -> None:
    small = LlamaCppBackend(default_model_path(), context_length=512)
    session = Session(memory, "long")
    session.append("user", "Please remember that my locker number is 5521.")
    session.append("assistant", "Noted: your locker number is 5521.")
    filler = "The weather report says clouds drift over the hills and rain may follow. " * 8
    for i in range(48):
        session.append("user" if i % 2 == 0 else "assistant", f"Note {i}. {filler}")
    stored_tokens = sum(small.count_tokens(t.content) for t in session.turns())
    assert stored_tokens > 10 * small.context_length
    opts = SamplingOptions(max_tokens=16)
    for question in ("Say ok.", "What is my locker number?"):
        turn = augmented_turn(
            small,
            memory=memory,
            session=session,
            messages=[{"role": "user", "content": question}],
            options=opts,
        ).complete()
        assert turn.text.strip() and turn.finish_reason in ("stop", "length")
        assert turn.plan.history_dropped > 0
        assert turn.usage.prompt_tokens + turn.usage.completion_tokens <= small.context_length
    # the dropped first turn is recalled from memory
    assert any(c.source == "session:long" for c in turn.citations)
    assert "5521" in turn.text
    assert len(Session(memory, "long").turns()) == 50 + 4
    small.close()


def test_an_over_long_user_message_is_clipped_not_refused(memory: Memory) -> None:
    small = LlamaCppBackend(default_model_path(), context_length=256)
    long_message = "word " * 2000 + "Say yes."
    turn = augmented_turn(
        small,
        memory=memory,
        messages=[{"role": "user", "content": long_message}],
        options=SamplingOptions(max_tokens=8),
    ).complete()
    assert turn.usage.prompt_tokens < small.context_length
    assert turn.plan.messages[-1]["content"].endswith("Say yes.")
    small.close()
