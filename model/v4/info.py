"""Parameter accounting for V4-family models, counted on the meta device."""

from __future__ import annotations

import torch
from engram_sdk.model.info import ParamReport
from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.v41_config import V41Config


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


def count_v41_parameters(cfg: V41Config) -> ParamReport:
    """As :func:`count_v4_parameters`, counted as the reference counts: the released FP8
    Engram tables carry one E8M0 scale per 32 channels of a row, which transformers'
    ``DeepseekV41EngramEmbedding`` holds as a parameter (``scale``); ``total`` includes
    them. (Our model keeps a float table, or FP8 rows with their scales in a store.)"""
    from engram_sdk.model.v4.v41_model import V41Transformer

    with torch.device("meta"):
        model = V41Transformer(cfg)
    engram_rows = [b.engram.table.embedding.weight for b in model.layers if b.engram is not None]
    engram = sum(w.numel() for w in engram_rows)
    scales = sum(w.shape[0] * (w.shape[1] // 32) for w in engram_rows)
    total = sum(p.numel() for p in model.parameters()) + scales
    routed = sum(
        w.numel() for b in model.layers for w in (b.ffn.expert_w1, b.ffn.expert_w2, b.ffn.expert_w3)
    )
    active_routed = cfg.n_layers * cfg.n_activated_experts * 3 * cfg.dim * cfg.moe_inter_dim
    columns = (cfg.engram_max_ngram_size - 1) * cfg.engram_n_heads
    engram_read = len(cfg.engram_layer_ids) * columns * cfg.engram_head_dim * (1 + 1 / 32)
    embed_unread = (cfg.vocab_size - 1) * cfg.dim
    active = total - routed - engram - scales - embed_unread + active_routed + int(engram_read)
    return ParamReport(
        total=total,
        active_per_token=active,
        engram_tables=engram,
        routed_experts=routed,
        engram_share_of_sparse=engram / max(engram + routed, 1),
    )
