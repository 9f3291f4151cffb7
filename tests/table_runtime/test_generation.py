"""``engram_sdk.table_runtime.generate_batch``: batched generation of Engram models through
their runtime, decode steps recorded as CUDA graphs where they can be (eager elsewhere)."""

import pytest
import torch
from engram_sdk.model import build_model, get_preset
from engram_sdk.model.generate import generate_batch as model_generate_batch

from engram_sdk.table_runtime import attach_tables, generate_batch

DENSE = dict(tokenizer=None, vocab_size=300, max_seq_len=64, n_dense_layers=4, hc_mult=1)
PROMPTS = [[5, 17, 200, 3, 9], [44, 1, 1, 298, 7, 8, 120], [5, 17, 200, 3, 11]]


def _tokens_from_a_store(device: str, backend: str, folder) -> tuple[list, list]:
    """(tokens of the model with its own tables, tokens through a runtime over ``backend``)."""
    cfg = get_preset("tiny", **DENSE)
    reference = build_model(cfg, seed=8).to(device).eval()
    want = model_generate_batch(reference, PROMPTS, 6, cuda_graph=False)
    served = build_model(cfg, seed=8).to(device).eval()
    uri = "dram://" if backend == "dram" else f"shards://{folder / 'rows'}"
    with attach_tables(served, uri) as runtime:
        got = generate_batch(runtime, PROMPTS, 6)
    return want, got


def test_generation_through_a_runtime_gives_the_models_tokens(tmp_path) -> None:
    """On CPU nothing is recorded: every step goes eagerly through the model whose tables
    the runtime serves from shards, and the tokens are those of its own tables."""
    want, got = _tokens_from_a_store("cpu", "shards", tmp_path)
    assert got == want
    assert [len(t) for t in got] == [6, 6, 6]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="records CUDA graphs")
@pytest.mark.parametrize("backend", ["dram", "shards"])
def test_graphed_generation_from_a_store_gives_eager_tokens(backend: str, tmp_path) -> None:
    want, got = _tokens_from_a_store("cuda", backend, tmp_path)
    assert got == want
