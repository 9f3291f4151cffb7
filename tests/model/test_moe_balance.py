"""DeepSeek-V3's sequence-wise balance loss and expert loads against float64 loops."""

import torch
from engram_sdk.model import get_preset
from engram_sdk.model.moe import MoE


def test_sequence_balance_loss_matches_float64_reference() -> None:
    alpha = 0.01
    cfg = get_preset(
        "tiny",
        tokenizer=None,
        vocab_size=300,
        max_seq_len=64,
        n_expert_groups=1,
        n_limited_groups=1,
        seq_aux_alpha=alpha,
    )
    torch.manual_seed(0)
    moe = MoE(cfg).double().train()
    moe.gate.bias.copy_(torch.randn(cfg.n_routed_experts, dtype=torch.float64) * 0.1)
    x = torch.randn(3, 7, cfg.dim, dtype=torch.float64)
    moe(x)
    e, k = cfg.n_routed_experts, cfg.n_activated_experts
    losses, chosen_all = [], []
    for b in range(3):
        s = torch.sigmoid(x[b] @ moe.gate.weight.double().T)  # (T, E)
        chosen = (s + moe.gate.bias).topk(k, dim=-1).indices
        chosen_all.append(chosen.flatten())
        f = torch.zeros(e, dtype=torch.float64)
        for t in range(7):
            f[chosen[t]] += e / (k * 7)
        p = (s / s.sum(-1, keepdim=True)).mean(0)
        losses.append(alpha * (f * p).sum())
    want = torch.stack(losses).mean()
    routed = torch.bincount(torch.cat(chosen_all), minlength=e).to(moe.load.dtype)
    torch.testing.assert_close(moe.load, routed, rtol=0, atol=0)  # per-expert token counts
    torch.testing.assert_close(moe.aux_loss.double(), want, rtol=1e-5, atol=1e-9)
    moe.aux_loss.backward()
    assert moe.gate.weight.grad is not None and moe.gate.weight.grad.abs().sum() > 0
