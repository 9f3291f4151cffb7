"""How recall's search matches: words for joined code names and questions, else the phrase."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engram_sdk.llm.openai_http import OpenAIBackend
from engram_sdk.llm.recall import code_names, recall_match, recall_passages, recall_query
from engram_sdk.memory import Memory


@pytest.fixture(scope="module")
def chatml() -> Iterator[OpenAIBackend]:
    b = OpenAIBackend("http://127.0.0.1:9/v1")  # never called: counting only
    yield b
    b.close()


@pytest.mark.parametrize(
    ("message", "query", "match"),
    [
        ("Which file defines the class JSONDecoder?", "class JSONDecoder", "phrase"),
        ("Where is parse_header called with read_body?", "parse_header read_body", "words"),
        ("Does seq_len change seq_len?", "seq_len", "phrase"),
        ("What is the vault code of Heron?", "What is the vault code of Heron?", "words"),
        ("connection refused by the vault", "connection refused by the vault", "phrase"),
    ],
)
def test_recall_searches_names_once_and_by_words_unless_it_may_be_a_quote(
    message: str, query: str, match: str
) -> None:
    assert (recall_query(message), recall_match(message)) == (query, match)


def test_a_question_naming_two_functions_recalls_the_file_that_calls_both(
    chatml: OpenAIBackend, tmp_path: Path
) -> None:
    (tmp_path / "server.py").write_text(
        "def handle(sock):\n    head = parse_header(sock)\n    return read_body(sock, head)\n"
    )
    (tmp_path / "header.py").write_text("def parse_header(sock):\n    return sock.recv(64)\n")
    (tmp_path / "notes.md").write_text("Nothing about sockets here.\n" * 3)
    with Memory.open("dram://") as memory:
        memory.ingest(tmp_path, progress=False)
        got = recall_passages(
            chatml,
            memory,
            query="Where is parse_header called together with read_body?",
            scope="default",
            budget=300,
            context="passages",
        )
    assert got.citations[0].source == str(tmp_path / "server.py")
    assert str(tmp_path / "notes.md") not in {c.source for c in got.citations}


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True))
def test_a_code_name_has_an_underscore_a_digit_or_an_inner_capital(word: str) -> None:
    inner_capital = any(c.isupper() for c in word[1:]) and any(c.islower() for c in word)
    expected = "_" in word or any(c.isdigit() for c in word) or inner_capital
    assert (code_names(f"is {word} here?") == [word]) == expected
