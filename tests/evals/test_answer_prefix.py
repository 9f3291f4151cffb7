"""Chat models read RULER's prompt: the model's own chat template around the task text, then
the task's answer prefix exactly as RULER writes it (leading space included).

The oracle is transformers' ``apply_chat_template`` on SmolLM2's own tokenizer; the GGUF
model under llama.cpp must read the same text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from engram_sdk.evals import generate
from engram_sdk.evals.adapters import HFAdapter, LlamaCppAdapter

pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("llama_cpp")

# transformers reads the 100 MB GGUF to build the tokenizer: a minute or more on 2 cores
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2's tokenizer (chat template included) with a tiny random Llama behind it."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from engram_sdk.llm.llamacpp import default_model_path

    gguf = default_model_path()
    out = tmp_path_factory.mktemp("hf") / "smollm2-tokenizer"
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


def test_chat_prompt_is_the_template_then_the_answer_prefix_with_its_space(hf_folder):
    model = HFAdapter(str(hf_folder))
    assert model.chat
    samples = generate("niah_single_1", 1024, 1, model.token_counter, seed=3)
    samples += generate("vt", 1024, 1, model.token_counter, seed=3)
    for s in samples:
        assert s.answer_prefix.startswith(" ")  # RULER's prefixes begin with a space
        messages = [{"role": "user", "content": s.input}]
        theirs = model.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        assert model.render(s) == theirs + s.answer_prefix
        ids = model.backend.encode_prompt(model.render(s))
        expected = model.tokenizer(theirs + s.answer_prefix, add_special_tokens=False).input_ids
        assert ids == expected  # what generate() is fed: no BOS added to a chat template


def test_llama_cpp_reads_the_same_text_as_transformers(hf_folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_folder)
    model = LlamaCppAdapter()
    (s,) = generate("niah_multikey_2", 1024, 1, model.token_counter, seed=5)
    theirs = tok.apply_chat_template(
        [{"role": "user", "content": s.input}], add_generation_prompt=True, tokenize=False
    )
    assert model.render(s) == theirs + s.answer_prefix
    assert model.render(s).endswith("<|im_start|>assistant\n" + s.answer_prefix)


def test_base_models_read_input_then_prefix_after_a_bos(hf_folder):
    model = HFAdapter(str(hf_folder), chat=False)
    (s,) = generate("niah_single_1", 512, 1, model.token_counter, seed=1)
    assert model.render(s) == s.input + s.answer_prefix
    ids = model.backend.encode_prompt(model.render(s))
    bos = model.tokenizer.bos_token_id
    plain = model.tokenizer(s.input + s.answer_prefix, add_special_tokens=False).input_ids
    assert ids == ([bos] if bos is not None else []) + plain
