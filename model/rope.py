"""Rotary position embedding with YaRN scaling (DeepSeek-V3's formulation)."""

from __future__ import annotations

import math

import torch


def _correction_dim(num_rotations: float, dim: int, base: float, max_seq_len: int) -> float:
    return dim * math.log(max_seq_len / (num_rotations * 2 * math.pi)) / (2 * math.log(base))


def rope_frequencies(
    dim: int,
    seq_len: int,
    base: float,
    factor: float = 1.0,
    original_seq_len: int = 4096,
    beta_fast: int = 32,
    beta_slow: int = 1,
    *,
    magnitude: float = 1.0,
) -> torch.Tensor:
    """Complex rotations (seq_len, dim/2); with ``factor > 1`` low frequencies are stretched (YaRN).

    ``magnitude`` scales every rotation (HF's YaRN ``attention_factor``, which multiplies
    cos and sin); DeepSeek-V3's reference code uses 1.
    """
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    if factor > 1.0:
        low = max(math.floor(_correction_dim(beta_fast, dim, base, original_seq_len)), 0)
        high = min(math.ceil(_correction_dim(beta_slow, dim, base, original_seq_len)), dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        keep = 1 - ramp
        freqs = freqs / factor * (1 - keep) + freqs * keep
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), freqs)
    return torch.polar(torch.full_like(angles, magnitude), angles).to(torch.complex64)


def yarn_softmax_scale(head_dim: int, factor: float, mscale: float) -> float:
    """Attention scale: 1/sqrt(d), times YaRN's mscale² when stretched."""
    scale = head_dim**-0.5
    if factor > 1.0:
        m = 0.1 * mscale * math.log(factor) + 1.0
        scale *= m * m
    return scale


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., T, [H,] dim) by ``freqs`` (T, dim/2), pairs interleaved."""
    dtype = x.dtype
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    f = (
        freqs.view(freqs.shape[0], *([1] * (z.dim() - 3)), freqs.shape[-1])
        if z.dim() > 3
        else freqs
    )
    return torch.view_as_real(z * f).flatten(-2).to(dtype)


class ComplexRopeTables:
    """Mixin for a module whose complex RoPE tables are buffers named in ``rope_tables``.

    ``.to(bf16)`` or ``.half()`` would cast them to a real dtype (dropping their sines, with a
    warning), so they only follow the device. A table on the meta device (a model built
    under ``torch.device("meta")``, then ``to_empty``) is rebuilt on the target device by
    :meth:`rope_table`, since its values cannot be copied out.
    """

    rope_tables: tuple[str, ...] = ()

    def rope_table(self, name: str) -> torch.Tensor:
        """The table ``name`` computed afresh from the module's config."""
        raise NotImplementedError

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        buffers = self._buffers  # type: ignore[attr-defined]
        tables = {name: buffers.pop(name) for name in self.rope_tables}
        try:
            out = super()._apply(fn, recurse)  # type: ignore[misc]
        finally:
            buffers.update(tables)
        for name, table in tables.items():
            device = fn(torch.zeros((), device=table.device)).device
            if table.is_meta and device.type != "meta":
                buffers[name] = self.rope_table(name).to(device)
            else:
                buffers[name] = table.to(device)
        return out
