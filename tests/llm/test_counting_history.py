"""Prompt sizes from cached counts, sessions' cached history, and the recall query and labels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.llm.base import Message
from engram_sdk.llm.counting import PromptCounter
from engram_sdk.llm.history import HistoryCache, session_history
from engram_sdk.llm.llamacpp import LlamaCppBackend, default_model_path
from engram_sdk.llm.openai_http import OpenAIBackend
from engram_sdk.llm.recall import recall_passages, recall_query
from engram_sdk.memory import Memory
from engram_sdk.sessions import Session

ROLES = st.sampled_from(["system", "user", "assistant"])
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=80
)
CONVERSATIONS = st.lists(st.tuples(ROLES, TEXT), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def chatml() -> Iterator[OpenAIBackend]:
    b = OpenAIBackend("http://127.0.0.1:9/v1")  # never called: counting and rendering only
    yield b
    b.close()


@pytest.fixture(scope="module")
def smol() -> Iterator[LlamaCppBackend]:
    b = LlamaCppBackend(default_model_path(), context_length=512)
    yield b
    b.close()


def _messages(pairs: list[tuple[str, str]]) -> list[Message]:
    return [{"role": r, "content": c} for r, c in pairs]


@settings(max_examples=40, deadline=None)
@given(CONVERSATIONS)
def test_estimate_plus_margin_never_falls_short_of_the_rendered_count_chatml(
    chatml: OpenAIBackend, pairs: list[tuple[str, str]]
) -> None:
    counter = PromptCounter(chatml)
    messages = _messages(pairs)
    exact = chatml.count_tokens(chatml.render(messages))
    assert not counter.exact_only
    assert counter.estimate(messages) + counter.margin(len(messages)) >= exact


@settings(max_examples=15, deadline=None)
@given(CONVERSATIONS)
def test_estimate_plus_margin_never_falls_short_with_smollm2s_own_template(
    smol: LlamaCppBackend, pairs: list[tuple[str, str]]
) -> None:
    counter = PromptCounter(smol)
    messages = _messages(pairs)
    exact = smol.count_tokens(smol.render(messages))
    assert counter.estimate(messages) + counter.margin(len(messages)) >= exact


def test_each_message_text_is_counted_once(chatml: OpenAIBackend) -> None:
    counter = PromptCounter(chatml)
    history = _messages([("user", f"question {i} " * 20) for i in range(30)])
    counter.estimate(history)
    cached = dict(counter._cache)
    counter.estimate([*history, {"role": "user", "content": "new"}])
    assert {k: v for k, v in counter._cache.items() if k in cached} == cached
    assert set(counter._cache) - set(cached) == {"new"}


def test_cached_history_equals_a_fresh_read_after_own_and_foreign_appends(tmp_path: Path) -> None:
    with Memory.open(f"lmdb://{tmp_path / 'store'}") as memory:
        cache = HistoryCache()
        session = Session(memory, "s")
        assert cache.messages(session) == []
        session.append("user", "hello")
        session.append("assistant", "hi")
        cache.appended(
            session, _messages([("user", "hello"), ("assistant", "hi")])
        )  # as the server does after storing a turn
        fresh = [{"role": t.role, "content": t.content} for t in Session(memory, "s").turns()]
        assert cache.messages(Session(memory, "s")) == fresh
        # another writer (another Session object, as another process would be) appends
        Session(memory, "s").append("user", "from elsewhere")
        again = Session(memory, "s")
        fresh = [{"role": t.role, "content": t.content} for t in again.turns()]
        assert cache.messages(again) == fresh and fresh[-1]["content"] == "from elsewhere"
        assert session_history(again, [], cache=cache) == fresh
        # deleted and started again with as many turns: a new session, not the cached one
        again.delete()
        for text in ("new one", "new two", "new three"):
            Session(memory, "s").append("user", text)
        restarted = Session(memory, "s")
        fresh = [{"role": t.role, "content": t.content} for t in restarted.turns()]
        assert cache.messages(restarted) == fresh and fresh[0]["content"] == "new one"


def test_recall_query_keeps_code_names_and_leaves_prose_alone() -> None:
    assert recall_query("Which file defines the class JSONDecoder?") == "class JSONDecoder"
    assert recall_query("Where is py_make_scanner used?") == "py_make_scanner"
    assert recall_query("What is the vault code of Heron?") == "What is the vault code of Heron?"


def test_prompt_labels_are_relative_and_citations_keep_full_paths(
    chatml: OpenAIBackend, tmp_path: Path
) -> None:
    docs = tmp_path / "project"
    (docs / "pkg").mkdir(parents=True)
    (docs / "pkg" / "decoder.py").write_text("class JSONDecoder:\n    pass\n")
    (docs / "notes.md").write_text("JSONDecoder is defined in pkg/decoder.py\n")
    with Memory.open("dram://") as memory:
        memory.ingest(docs, progress=False)
        got = recall_passages(
            chatml, memory, query="Which file defines JSONDecoder?", scope="default", budget=300
        )
    sources = {c.source for c in got.citations}
    assert sources == {str(docs / "pkg" / "decoder.py"), str(docs / "notes.md")}
    assert "[pkg/decoder.py:1-2]" in got.block and "[notes.md:1-1]" in got.block
    assert str(tmp_path) not in got.block
