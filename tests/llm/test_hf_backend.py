"""The transformers backend on a local folder: SmolLM2's tokenizer and a tiny random Llama."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from engram_sdk.llm.llamacpp import default_model_path

    gguf = default_model_path()
    out = tmp_path_factory.mktemp("hf") / "tiny-llama"
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


@pytest.mark.slow
def test_hf_folder_uses_its_own_template_and_matches_transformers_generate(folder: Path) -> None:
    import torch

    from engram_sdk.llm import SamplingOptions, load_backend
    from engram_sdk.llm.hf import HFBackend

    backend = load_backend(folder)
    assert isinstance(backend, HFBackend)
    assert backend.context_length == 256 and backend.is_chat
    messages = [{"role": "user", "content": "Hello there"}]
    ours = backend.render(messages)
    theirs = backend.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    assert ours == theirs  # the sandboxed Jinja rendering equals transformers' own
    out = backend.generate(messages, options=SamplingOptions(max_tokens=6))
    ids = backend.tokenizer(theirs, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        ref = backend.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False
        )
    new = ref[0, ids.shape[1] :]
    assert out.text == backend.tokenizer.decode(new, skip_special_tokens=True)
    assert out.usage.prompt_tokens == ids.shape[1] and out.usage.completion_tokens == len(new)
    streamed = list(backend.stream(messages, options=SamplingOptions(max_tokens=6)))
    assert "".join(c.text for c in streamed) == out.text
    # as a base model (no template) the prompt gets the tokenizer's BOS in front
    backend.is_chat = False
    assert backend.encode_prompt("abc")[0] == backend.tokenizer.bos_token_id
