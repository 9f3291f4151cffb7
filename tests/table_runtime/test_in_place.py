"""Pinned rows read in place by the GPU, started at ``prepare`` on the table's stream
(CUDA only): logits bitwise those of GPU-resident rows, for decode-size and big steps."""

import pytest
import torch
from engram_sdk.model import ModelCache, build_model, get_preset

from engram_sdk.table_runtime import attach_tables

CFG = dict(tokenizer=None, vocab_size=300, max_seq_len=64)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="reads pinned rows on CUDA")


@pytest.mark.parametrize("direct_tokens", [64, 1 << 40])
def test_rows_read_in_place_early_give_the_models_logits(direct_tokens: int) -> None:
    reference = build_model(get_preset("tiny", **CFG), seed=3).cuda().eval()
    served = build_model(get_preset("tiny", **CFG), seed=3).cuda().eval()
    ids = torch.randint(0, 300, (4, 40), generator=torch.Generator().manual_seed(4))
    with attach_tables(served, "dram://", direct_tokens=direct_tokens) as runtime, torch.no_grad():
        for step in (reference, runtime):
            cache = ModelCache()
            parts = [step(ids[:, :16].pin_memory(), cache)]  # 64 tokens: in place either way
            parts += [step(ids[:, i : i + 1], cache) for i in range(16, 24)]
            parts.append(step(ids[:, 24:].cuda(), cache))  # device ids, 64 tokens
            if step is reference:
                want = torch.cat(parts, 1)
        got = torch.cat(parts, 1)
        assert runtime.stats.fetches >= 10 and runtime.stats.wait_seconds == 0.0
    assert torch.equal(got, want)
    with attach_tables(served, "dram://", direct_tokens=direct_tokens) as runtime, torch.no_grad():
        assert torch.equal(runtime(ids), reference(ids))  # 160 tokens: fetched, or in place
