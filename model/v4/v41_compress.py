"""DeepSeek-V4.1's shared compressed KV (CSA2): the compressor of a kv-source layer, the
indexer of an index-source layer, and the per-group state they publish.

A kv source pools every ``ratio`` tokens into one latent (per-channel softmax of a gate
over the group; at ratio 1 each token is its own latent, no gate). The latent, rotated at
its group's first position and rounded through FP4, is the group's compressed KV. An
index source that is also a kv source derives the indexer keys ``k_norm(wk(latent))``
(rotated, FP4-rounded) from the same, unrotated latent. Every index source scores its
queries against its group's keys and keeps the top ``index_topk`` visible entries; the
layers in between attend through that choice. Entry ``w`` is visible to the query at
position ``t`` once ``t + 1 >= (w + 1) * ratio``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from engram_sdk.model.v4.fake_quant import fp4_round
from engram_sdk.model.v4.rope import rotate_tail
from engram_sdk.model.v4.v41_config import V41Config
from torch import nn


@dataclass
class GroupState:
    """What the current group's source layers published for the layers after them.

    ``compressed_kv`` (B, W, head_dim) and ``index_keys`` (B, W, index_head_dim) cover all
    entries so far; ``chosen`` (B, T, W) marks the entries each query attends;
    ``candidates`` (B, T, W) the two-level top-k's first level."""

    compressed_kv: torch.Tensor | None = None
    index_keys: torch.Tensor | None = None
    chosen: torch.Tensor | None = None
    candidates: torch.Tensor | None = None


@dataclass
class CompressorCache:
    """A kv source's state across calls: tokens of the unfinished group, and entries."""

    pending_kv: torch.Tensor | None = None
    pending_gate: torch.Tensor | None = None
    entries: int = 0
    group: GroupState = field(default_factory=GroupState)


def top_k_mask(scores: torch.Tensor, k: int, ordered: bool = False) -> torch.Tensor:
    """Bool mask of the ``k`` best finite scores along the last dim, picked by
    ``torch.topk`` as the reference picks them. Exactly equal scores (every indexer head
    zeroed by relu) are split as ``topk`` splits them, which can differ between a prefill
    and a query decoded alone; the reference's cached decoding behaves the same way."""
    top = scores.topk(min(k, scores.shape[-1]), dim=-1, sorted=ordered)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    return mask.scatter_(-1, top.indices, top.values > float("-inf"))


class V41Compressor(nn.Module):
    """Latents (B, W, head_dim) of the groups completed by x (B, T, D), before rotation."""

    def __init__(self, cfg: V41Config, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.wkv = nn.Linear(cfg.dim, cfg.head_dim, bias=False)
        self.wgate = nn.Linear(cfg.dim, cfg.head_dim, bias=False) if ratio > 1 else None
        self.norm = nn.RMSNorm(cfg.head_dim, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor, cache: CompressorCache | None = None) -> torch.Tensor:
        if self.wgate is None:
            return self.norm(self.wkv(x))
        kv = F.linear(x.float(), self.wkv.weight.float())
        gate = F.linear(x.float(), self.wgate.weight.float())
        if cache is not None and cache.pending_kv is not None:
            kv = torch.cat([cache.pending_kv, kv], dim=1)
            gate = torch.cat([cache.pending_gate, gate], dim=1)
        whole = kv.shape[1] // self.ratio * self.ratio
        if cache is not None:
            cache.pending_kv, cache.pending_gate = kv[:, whole:], gate[:, whole:]
        b, d = kv.shape[0], kv.shape[-1]
        kv = kv[:, :whole].view(b, -1, self.ratio, d)
        weights = gate[:, :whole].view(b, -1, self.ratio, d).softmax(dim=2)
        return self.norm((kv * weights).sum(dim=2).to(x.dtype))


class V41Indexer(nn.Module):
    """Top-k choice of compressed entries: I[t, w] = Σ_h w_h(t) relu(q_h(t) · k_w) / sqrt(d)."""

    def __init__(self, cfg: V41Config, layer_id: int) -> None:
        super().__init__()
        self.cfg, self.layer_id = cfg, layer_id
        self.ratio = cfg.compress_ratios[layer_id]
        self.wq_b = nn.Linear(cfg.q_lora_rank, cfg.index_n_heads * cfg.index_head_dim, bias=False)
        self.weights_proj = nn.Linear(cfg.dim, cfg.index_n_heads, bias=False)
        self.owns_keys = layer_id in cfg.kv_source_layer_ids
        if self.owns_keys:
            self.wk = nn.Linear(cfg.head_dim, cfg.index_head_dim, bias=False)
            self.k_norm = nn.RMSNorm(cfg.index_head_dim, eps=cfg.norm_eps)

    def keys(self, latent: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        """Indexer keys (B, W, index_head_dim) of latents rotated at ``freqs`` (W, r/2)."""
        return fp4_round(rotate_tail(self.k_norm(self.wk(latent)), freqs), 32)

    def forward(
        self, x: torch.Tensor, q_latent: torch.Tensor, positions: torch.Tensor,
        freqs: torch.Tensor, group: GroupState,
    ) -> None:  # fmt: skip
        """Publish ``group.chosen`` (B, T, W) for queries at ``positions`` (T,)."""
        cfg, keys = self.cfg, group.index_keys
        if keys is None or keys.shape[1] == 0:
            group.chosen = None
            return
        b, t, _ = x.shape
        q = self.wq_b(q_latent).view(b, t, cfg.index_n_heads, cfg.index_head_dim)
        q = fp4_round(rotate_tail(q, freqs), 32)
        logits = torch.einsum("bshd,btd->bsht", q.float(), keys.float()).relu()
        logits = logits * cfg.index_head_dim**-0.5
        weights = self.weights_proj(x).float() * cfg.index_n_heads**-0.5
        scores = (logits * weights.unsqueeze(-1)).sum(dim=2)  # (B, T, W)
        reach = ((positions + 1) // self.ratio)[:, None]  # entries each query may see
        scores = scores.masked_fill(~(torch.arange(keys.shape[1], device=x.device) < reach),
                                    float("-inf"))  # fmt: skip
        if self.layer_id == cfg.candidate_source_layer_id:
            group.candidates = self._candidate_blocks(scores, reach)
        elif 0 <= cfg.candidate_source_layer_id < self.layer_id and group.candidates is not None:
            scores = scores.masked_fill(~group.candidates, float("-inf"))
        group.chosen = top_k_mask(scores, cfg.index_topk)

    def _candidate_blocks(self, scores: torch.Tensor, reach: torch.Tensor) -> torch.Tensor:
        """(B, T, W) bool: entries in each query's best ``candidate_topk_blocks`` blocks
        (a block scores its best entry; the block of the newest visible entry always in)."""
        size, width = self.cfg.candidate_block_size, scores.shape[-1]
        blocks = F.pad(scores, (0, -width % size), value=float("-inf"))
        blocks = blocks.unflatten(-1, (-1, size)).amax(dim=-1)
        newest = (reach - 1).div(size, rounding_mode="floor")  # -1 when nothing is visible
        blocks = blocks.masked_fill(torch.arange(blocks.shape[-1], device=scores.device)
                                    == newest, float("inf"))  # fmt: skip
        keep = top_k_mask(blocks, self.cfg.candidate_topk_blocks, ordered=True)
        return keep.repeat_interleave(size, dim=-1)[..., :width]
