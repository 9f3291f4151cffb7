"""Parameter accounting for V4-family models, counted on the meta device."""

from __future__ import annotations

import torch
from engram_sdk.model.info import ParamReport
from engram_sdk.model.v4.config import V4Config


def count_v4_parameters(cfg: V4Config) -> ParamReport:
    """Total, active per token (every weight but the unchosen routed experts, the unread
    embedding rows and the unread Engram rows), Engram tables and routed experts."""
    from engram_sdk.model.v4.model import V4Transformer

    with torch.device("meta"):
        model = V4Transformer(cfg)
    total = sum(p.numel() for p in model.parameters())
    engram = sum(
        b.engram.table.embedding.weight.numel() for b in model.layers if b.engram is not None
    )
    routed = sum(
        w.numel() for b in model.layers for w in (b.ffn.expert_w1, b.ffn.expert_w2, b.ffn.expert_w3)
    )
    per_expert = 3 * cfg.dim * cfg.moe_inter_dim
    active_routed = cfg.n_layers * cfg.n_activated_experts * per_expert
    columns = (cfg.engram_max_ngram_size - 1) * cfg.engram_n_heads
    engram_read = len(cfg.engram_layer_ids) * columns * cfg.engram_head_dim
    embed_unread = (cfg.vocab_size - 1) * cfg.dim
    active = total - routed - engram - embed_unread + active_routed + engram_read
    return ParamReport(
        total=total,
        active_per_token=active,
        engram_tables=engram,
        routed_experts=routed,
        engram_share_of_sparse=engram / max(engram + routed, 1),
    )
