"""Parameter accounting: total, active per token, Engram tables and their share of sparse params."""

from __future__ import annotations

from engram_sdk.model.config import ModelConfig
from pydantic import BaseModel


class ParamReport(BaseModel):
    """What ``engram model info`` prints."""

    total: int
    active_per_token: int
    engram_tables: int
    routed_experts: int
    engram_share_of_sparse: float


def count_parameters(cfg: ModelConfig) -> ParamReport:
    """Count by building the model on the meta device (no memory is allocated)."""
    import torch
    from engram_sdk.model.transformer import Transformer

    with torch.device("meta"):
        model = Transformer(cfg)
    total = sum(p.numel() for p in model.parameters())
    engram = sum(
        b.engram.table.embedding.weight.numel() for b in model.blocks if b.engram is not None
    )
    routed = 0
    for moe in model.moe_layers():
        routed += sum(w.numel() for w in (moe.expert_w1, moe.expert_w2, moe.expert_w3))
    per_expert = 3 * cfg.dim * cfg.moe_inter_dim
    active_routed = len(model.moe_layers()) * cfg.n_activated_experts * per_expert
    head_dim = cfg.engram_embed_per_ngram // cfg.engram_heads_per_ngram
    engram_rows_read = (
        len(cfg.engram_layer_ids)
        * (cfg.engram_max_ngram - 1)
        * cfg.engram_heads_per_ngram
        * head_dim
    )
    embed_rows = cfg.vocab_size * cfg.dim - cfg.dim  # one embedding row is read per token
    active = total - routed - engram - embed_rows + active_routed + engram_rows_read
    return ParamReport(
        total=total,
        active_per_token=active,
        engram_tables=engram,
        routed_experts=routed,
        engram_share_of_sparse=engram / max(engram + routed, 1),
    )
