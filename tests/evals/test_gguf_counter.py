"""The GGUF counter gives llama.cpp's own token ids (the oracle: llama.cpp's tokenizer), and
remembered piecewise counts over it equal llama.cpp's whole-text counts."""

from __future__ import annotations

import pytest
from engram_sdk.evals import generate
from engram_sdk.evals.memo_counter import MemoCounter

pytest.importorskip("llama_cpp")
pytest.importorskip("tokenizers")
pytest.importorskip("gguf")

# reading the GGUF's tokenizer tables takes a few CPU seconds; llama.cpp loads the model too
pytestmark = pytest.mark.slow

TASKS = [
    "niah_single_1",
    "niah_single_3",
    "niah_multikey_2",
    "niah_multikey_3",
    "niah_multivalue",
    "vt",
    "cwe",
    "fwe",
    "qa_synthetic",
]
TRICKY = "e.g. 5 cafés.  Naïve\n\n  x.\n\tTab €12.50 <|im_start|>user\n… 'tis.\nNext"


@pytest.fixture(scope="module")
def llama():
    from engram_sdk.llm.llamacpp import default_backend

    return default_backend()


@pytest.fixture(scope="module")
def fast():
    from engram_sdk.evals.gguf_counter import gguf_counter

    from engram_sdk.llm.llamacpp import default_model_path

    counter = gguf_counter(default_model_path())
    assert counter is not None
    return counter


def test_ids_equal_llama_cpp_on_every_task_and_odd_text(llama, fast):
    texts = [TRICKY * 3]
    for task in TASKS:
        texts += [s.input + s.answer_prefix for s in generate(task, 2048, 1, fast, seed=9)]
    for text in texts:
        ours = fast._tok.encode(text, add_special_tokens=False).ids
        theirs = llama.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        assert ours == theirs


def test_remembered_piecewise_counts_equal_llama_cpp_whole_counts(llama, fast):
    memo = MemoCounter(fast, long_chars=0)
    for task in TASKS:
        for s in generate(task, 4096, 1, memo, seed=2):
            text = s.input + s.answer_prefix + TRICKY
            assert memo.count(text) == llama.count_tokens(text)
