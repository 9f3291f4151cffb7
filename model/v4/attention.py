"""DeepSeek-V4 attention: shared-KV MQA over a sliding window plus compressed entries.

Queries pass a low-rank bottleneck and a per-head RMS norm; one key/value head (keys are
values) is shared by all heads; the trailing ``rope_head_dim`` channels are rotated, and the
output's are rotated back by the query's position. A learned per-head sink joins every
softmax. The output projection is grouped: ``o_groups`` blocks of heads each go to
``o_lora_rank`` channels, then one linear mixes them.
"""

from __future__ import annotations

import torch
from engram_sdk.model.v4.cache import V4LayerCache
from engram_sdk.model.v4.compressor import Compressor, Indexer
from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.rope import rotate_tail
from engram_sdk.model.v4.sparse_attention import v4_sparse_attention
from torch import nn

from engram_sdk.errors import InputError


class V4Attention(nn.Module):
    """Attention of layer ``layer_id`` (see the module docstring).

    ``dense_reference``: build (B, H, T, S) logits and masks, O(T·S) (the reference); off
    (the default), :func:`~engram_sdk.model.v4.sparse_attention.v4_sparse_attention`, O(T·k).
    """

    dense_reference: bool = False

    def __init__(self, cfg: V4Config, layer_id: int) -> None:
        super().__init__()
        self.cfg = cfg
        h, d = cfg.n_heads, cfg.head_dim
        self.ratio = cfg.compress_ratio(layer_id)
        self.wq_a = nn.Linear(cfg.dim, cfg.q_lora_rank, bias=False)
        self.q_norm = nn.RMSNorm(cfg.q_lora_rank, eps=cfg.norm_eps)
        self.wq_b = nn.Linear(cfg.q_lora_rank, h * d, bias=False)
        self.wkv = nn.Linear(cfg.dim, d, bias=False)
        self.kv_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.wo_a = nn.Linear(h * d // cfg.o_groups, cfg.o_groups * cfg.o_lora_rank, bias=False)
        self.wo_b = nn.Linear(cfg.o_groups * cfg.o_lora_rank, cfg.dim, bias=False)
        self.attn_sink = nn.Parameter(torch.zeros(h))
        sparse = cfg.attn_types[layer_id] == "compressed_sparse_attention"
        self.compressor = (
            Compressor(cfg.dim, d, self.ratio, overlap=sparse, eps=cfg.norm_eps)
            if self.ratio
            else None
        )
        self.indexer = (
            Indexer(cfg.dim, cfg.q_lora_rank, cfg.index_n_heads, cfg.index_head_dim,
                    self.ratio, cfg.index_topk, cfg.norm_eps)
            if sparse else None
        )  # fmt: skip

    def forward(
        self, x: torch.Tensor, freqs: torch.Tensor, positions: torch.Tensor | None = None,
        cache: V4LayerCache | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """x (B, T, D) at ``positions`` (default 0..T) → (B, T, D); ``freqs`` are this layer's
        rotations; ``cache`` holds the layer's state from earlier tokens of the sequence."""
        cfg = self.cfg
        b, t, _ = x.shape
        if positions is None:
            positions = torch.arange(t, device=x.device)
        rot = freqs[positions]
        q_latent = self.q_norm(self.wq_a(x))
        q = self.wq_b(q_latent).view(b, t, cfg.n_heads, cfg.head_dim)
        q = rotate_tail(q * torch.rsqrt(q.float().square().mean(-1, keepdim=True) + cfg.norm_eps)
                        .to(q.dtype), rot)  # fmt: skip
        kv = rotate_tail(self.kv_norm(self.wkv(x)), rot)
        if self.dense_reference:
            out = self._dense(x, q, q_latent, kv, freqs, positions, cache)
        else:
            out = self._sparse(x, q, q_latent, kv, freqs, positions, cache)
        out = rotate_tail(out, rot.conj())
        grouped = out.reshape(b, t, cfg.o_groups, -1)
        w = self.wo_a.weight.view(cfg.o_groups, cfg.o_lora_rank, -1)
        return self.wo_b(torch.einsum("btgi,goi->btgo", grouped, w).flatten(2))

    def _dense(
        self, x: torch.Tensor, q: torch.Tensor, q_latent: torch.Tensor, kv: torch.Tensor,
        freqs: torch.Tensor, positions: torch.Tensor, cache: V4LayerCache | None,
    ) -> torch.Tensor:  # fmt: skip
        b = x.shape[0]
        kv, visible = self._window(kv, positions, cache)
        if self.compressor is not None:
            entries = self.compressor(x, freqs, None if cache is None else cache.compressor)
            chosen = (
                self.indexer(
                    x, q_latent, freqs, positions, None if cache is None else cache.indexer
                )
                if self.indexer is not None
                else self.compressor.visible(positions, entries.shape[1]).expand(b, -1, -1)
            )
            kv = torch.cat([kv, entries], dim=1)
            visible = torch.cat([visible.expand(b, -1, -1), chosen], dim=-1)
        return self._attend(q, kv, visible)  # (B, T, H, d)

    def _sparse(
        self, x: torch.Tensor, q: torch.Tensor, q_latent: torch.Tensor, kv: torch.Tensor,
        freqs: torch.Tensor, positions: torch.Tensor, cache: V4LayerCache | None,
    ) -> torch.Tensor:  # fmt: skip
        t = x.shape[1]
        first, gaps = torch.stack([positions[0], (positions.diff() != 1).sum()]).tolist()
        if gaps:
            raise InputError("V4 sparse attention needs consecutive positions")
        kv, _ = self._window(kv, positions, cache, masks=False)
        entries = index = None
        if self.compressor is not None:
            entries = self.compressor(x, freqs, None if cache is None else cache.compressor)
            if self.indexer is not None:
                state = None if cache is None else cache.indexer
                index = self.indexer.inputs(x, q_latent, freqs, positions, state)
        return v4_sparse_attention(
            q, kv, self.attn_sink, first=first, window_start=first - (kv.shape[1] - t),
            window=self.cfg.window_size, entries=entries, ratio=self.ratio, index=index,
            topk=self.cfg.index_topk,
        )  # fmt: skip

    def _window(
        self, kv: torch.Tensor, positions: torch.Tensor, cache: V4LayerCache | None,
        masks: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """Window keys (B, S, d), cached ones first, and (``masks``) their (1, T, S)
        visibility; the cache keeps the last ``window_size - 1``."""
        key_pos = positions
        if cache is not None:
            if cache.window_kv is not None:
                kv = torch.cat([cache.window_kv, kv], dim=1)
                key_pos = torch.cat([cache.window_positions, positions])
            drop = max(0, kv.shape[1] - (self.cfg.window_size - 1))
            cache.window_kv, cache.window_positions = kv[:, drop:], key_pos[drop:]
        if not masks:
            return kv, None
        q_pos, k_pos = positions[:, None], key_pos[None, :]
        visible = (k_pos <= q_pos) & (k_pos > q_pos - self.cfg.window_size)
        return kv, visible.unsqueeze(0)

    def _attend(self, q: torch.Tensor, kv: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Softmax attention of q (B, T, H, d) over kv (B, S, d) with the per-head sink."""
        logits = torch.einsum("bthd,bsd->bhts", q, kv) * self.cfg.head_dim**-0.5
        logits = logits.masked_fill(~visible[:, None], float("-inf"))
        sink = self.attn_sink.to(logits.dtype).view(1, -1, 1, 1).expand(*logits.shape[:3], 1)
        probs = torch.cat([logits, sink], dim=-1).softmax(dim=-1)[..., :-1]
        return torch.einsum("bhts,bsd->bthd", probs.to(kv.dtype), kv)


def use_dense_reference(model: nn.Module, dense: bool = True) -> None:
    """Switch every V4 attention layer of ``model`` to the dense reference (or back)."""
    for module in model.modules():
        if isinstance(module, V4Attention):
            module.dense_reference = dense
