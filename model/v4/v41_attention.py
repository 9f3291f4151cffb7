"""DeepSeek-V4.1 attention: V4's shared-KV MQA over a sliding window (window KV rounded
through FP8), plus, in compressed layers, the entries of the group's shared compressed KV
that the group's indexer chose (see :mod:`engram_sdk.model.v4.v41_compress`).

Decoding keeps, per layer, the last ``window_size - 1`` window entries and, per kv
source, the unfinished group's tokens and the group's entries and indexer keys
(:class:`V41Cache`); a chunk of new tokens then computes exactly what the whole sequence
would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from engram_sdk.model.v4.fake_quant import fp4_round, fp8_round
from engram_sdk.model.v4.rope import rotate_tail
from engram_sdk.model.v4.v41_compress import (
    CompressorCache,
    GroupState,
    V41Compressor,
    V41Indexer,
)
from engram_sdk.model.v4.v41_config import V41Config
from torch import nn


@dataclass
class WindowCache:
    """One layer's last window entries (B, <= window - 1, head_dim) and their positions."""

    kv: torch.Tensor | None = None
    positions: torch.Tensor | None = None


@dataclass
class V41Cache:
    """Decoding state of a whole V4.1 model: tokens seen, window per layer, group per source."""

    length: int = 0
    windows: dict[int, WindowCache] = field(default_factory=dict)
    sources: dict[int, CompressorCache] = field(default_factory=dict)
    engram_history: torch.Tensor | None = None  # (B, <= max_ngram - 1) canonical ids


class V41Attention(nn.Module):
    """Attention of layer ``layer_id`` (see the module docstring)."""

    def __init__(self, cfg: V41Config, layer_id: int) -> None:
        super().__init__()
        self.cfg, self.layer_id = cfg, layer_id
        h, d = cfg.n_heads, cfg.head_dim
        self.ratio = cfg.compress_ratios[layer_id]
        self.wq_a = nn.Linear(cfg.dim, cfg.q_lora_rank, bias=False)
        self.q_norm = nn.RMSNorm(cfg.q_lora_rank, eps=cfg.norm_eps)
        self.wq_b = nn.Linear(cfg.q_lora_rank, h * d, bias=False)
        self.wkv = nn.Linear(cfg.dim, d, bias=False)
        self.kv_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.wo_a = nn.Linear(h * d // cfg.o_groups, cfg.o_groups * cfg.o_lora_rank, bias=False)
        self.wo_b = nn.Linear(cfg.o_groups * cfg.o_lora_rank, cfg.dim, bias=False)
        self.attn_sink = nn.Parameter(torch.zeros(h))
        source = layer_id in cfg.kv_source_layer_ids
        self.compressor = V41Compressor(cfg, self.ratio) if source else None
        self.indexer = V41Indexer(cfg, layer_id) if layer_id in cfg.index_source_layer_ids else None

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor, freqs: torch.Tensor,
        group: GroupState | None, cache: V41Cache | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """x (B, T, D) at ``positions`` (T,) → (B, T, D). ``freqs``: this layer's rotation
        table (plain or compressed); ``group``: the current group's shared state."""
        cfg = self.cfg
        b, t, _ = x.shape
        rot = freqs[positions]
        q_latent = self.q_norm(self.wq_a(x))
        q = rotate_tail(self.wq_b(q_latent).view(b, t, cfg.n_heads, cfg.head_dim), rot)
        kv = fp8_round(rotate_tail(self.kv_norm(self.wkv(x)), rot), 32)
        kv, visible = self._window(kv, positions, cache)
        if self.ratio and group is not None:
            if self.compressor is not None:
                self._publish(x, freqs, group, cache)
            if self.indexer is not None:
                self.indexer(x, q_latent, positions, rot, group)
            entries = group.compressed_kv
            if entries is not None and entries.shape[1]:
                chosen = group.chosen
                if chosen is None:
                    chosen = torch.zeros(b, t, entries.shape[1], dtype=torch.bool, device=x.device)
                kv = torch.cat([kv, entries], dim=1)
                visible = torch.cat([visible.expand(b, -1, -1), chosen], dim=-1)
        out = rotate_tail(self._attend(q, kv, visible), rot.conj())
        grouped = out.reshape(b, t, cfg.o_groups, -1)
        w = self.wo_a.weight.view(cfg.o_groups, cfg.o_lora_rank, -1)
        return self.wo_b(torch.einsum("btgi,goi->btgo", grouped, w).flatten(2))

    def _window(
        self, kv: torch.Tensor, positions: torch.Tensor, cache: V41Cache | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Window keys (B, S, d) with the cached ones in front, and (1, T, S) visibility."""
        key_pos = positions
        if cache is not None:
            past = cache.windows.setdefault(self.layer_id, WindowCache())
            if past.kv is not None:
                kv = torch.cat([past.kv, kv], dim=1)
                key_pos = torch.cat([past.positions, positions])
            drop = max(0, kv.shape[1] - (self.cfg.window_size - 1))
            past.kv, past.positions = kv[:, drop:], key_pos[drop:]
        q_pos, k_pos = positions[:, None], key_pos[None, :]
        visible = (k_pos <= q_pos) & (k_pos > q_pos - self.cfg.window_size)
        return kv, visible.unsqueeze(0)

    def _publish(
        self, x: torch.Tensor, freqs: torch.Tensor, group: GroupState, cache: V41Cache | None
    ) -> None:
        """Run the compressor; append the new entries (and indexer keys) to ``group``."""
        assert self.compressor is not None  # a kv source
        state = cache.sources.setdefault(self.layer_id, CompressorCache()) if cache else None
        first = state.entries if state is not None else 0
        latent = self.compressor(x, state)
        if state is not None:
            state.entries += latent.shape[1]
        at = freqs[(first + torch.arange(latent.shape[1], device=x.device)) * self.ratio]
        entries = fp4_round(rotate_tail(latent, at), 16, e4m3_scales=True)
        group.compressed_kv = _append(group.compressed_kv, entries)
        if self.indexer is not None and self.indexer.owns_keys:
            group.index_keys = _append(group.index_keys, self.indexer.keys(latent, at))

    def _attend(self, q: torch.Tensor, kv: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Softmax attention of q (B, T, H, d) over kv (B, S, d) with the per-head sink."""
        logits = torch.einsum("bthd,bsd->bhts", q, kv) * self.cfg.head_dim**-0.5
        logits = logits.masked_fill(~visible[:, None], float("-inf"))
        sink = self.attn_sink.to(logits.dtype).view(1, -1, 1, 1).expand(*logits.shape[:3], 1)
        probs = torch.cat([logits, sink], dim=-1).softmax(dim=-1)[..., :-1]
        return torch.einsum("bhts,bsd->bthd", probs.to(kv.dtype), kv)


def _append(running: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
    return new if running is None else torch.cat([running, new], dim=1)
