"""CUDA checks (skipped without a GPU): grouped-GEMM experts, fused addressing, cached decoding."""

import pytest
import torch
from engram_sdk.model import ModelCache, build_model, get_preset
from engram_sdk.model.moe import MoE

pytestmark = pytest.mark.gpu


def test_grouped_gemm_experts_equal_the_per_expert_loop() -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, dim=64, moe_inter_dim=64)
    moe = MoE(cfg).cuda()
    x = torch.randn(4, 50, 64, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        grouped = moe(x)
        moe._grouped = lambda xs, counts: None  # type: ignore[method-assign]
        looped = moe(x)
    torch.testing.assert_close(grouped.float(), looped.float(), atol=2e-2, rtol=2e-2)


def test_cuda_model_matches_cpu_and_caches() -> None:
    cpu = build_model(get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)).eval()
    gpu = (
        build_model(get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64))
        .cuda()
        .eval()
    )
    ids = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        want = cpu(ids)
        got = gpu(ids.cuda())
        torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-3)
        cache = ModelCache()
        parts = [gpu(ids[:, :10].cuda(), cache)] + [
            gpu(ids[:, i : i + 1].cuda(), cache) for i in range(10, 20)
        ]
        torch.testing.assert_close(torch.cat(parts, 1).cpu(), want, atol=1e-4, rtol=1e-3)
