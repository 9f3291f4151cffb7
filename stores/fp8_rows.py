"""FP8 rows with block scales (DeepSeek-V4.1's Engram tables) as one fixed-width row type.

A row of ``dim`` values is stored as ``dim`` bytes of FP8 E4M3 followed by ``dim / 32``
bytes of E8M0 scales (one power of two per 32 channels): 256 + 8 = 264 bytes for V4.1's
rows, about 101.5 GB for a table of 384 M rows, against 393 GB in float32. The bytes live in
an ordinary ``int8`` table of width ``row_bytes(dim)`` in any store, so every backend,
cache and checksum applies unchanged; :func:`decode_rows` turns gathered rows back into
float32 (exact: every E4M3 value times a power of two is a float32).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from engram_sdk.stores.base import Store
from engram_sdk.stores.errors import InputError
from engram_sdk.stores.models import TableSpec

BLOCK = 32  # channels per E8M0 scale
E4M3_MAX = 448.0
E8M0_BIAS = 127


def row_bytes(dim: int) -> int:
    """Stored bytes of one row of ``dim`` values."""
    if dim % BLOCK:
        raise InputError(f"FP8 rows need dim divisible by {BLOCK}, got {dim}")
    return dim + dim // BLOCK


def pack_rows(values: torch.Tensor, scale_bytes: torch.Tensor) -> np.ndarray:
    """(N, row_bytes) int8 rows from E4M3 values (N, dim) and E8M0 exponents (N, dim/32).

    ``scale_bytes`` may be uint8 (2^(byte - 127)) or ``torch.float8_e8m0fnu``.
    """
    if values.dtype != torch.float8_e4m3fn:
        raise InputError(f"values must be torch.float8_e4m3fn, got {values.dtype}")
    n, dim = values.shape
    if scale_bytes.shape != (n, dim // BLOCK):
        raise InputError(f"scales must be ({n}, {dim // BLOCK}), got {tuple(scale_bytes.shape)}")
    raw = torch.cat([values.view(torch.uint8), scale_bytes.contiguous().view(torch.uint8)], 1)
    return raw.cpu().numpy().view(np.int8)


def encode_rows(rows: torch.Tensor) -> np.ndarray:
    """Quantise float rows (N, dim): per 32 channels the smallest power of two that keeps
    the block within E4M3's range, then round to E4M3."""
    x = rows.detach().float().cpu()
    blocks = x.view(len(x), -1, BLOCK)
    amax = blocks.abs().amax(-1).clamp_min(torch.finfo(torch.float32).tiny)
    exponent = torch.ceil(torch.log2(amax / E4M3_MAX)).clamp(-E8M0_BIAS, E8M0_BIAS)
    values = (blocks / torch.exp2(exponent).unsqueeze(-1)).to(torch.float8_e4m3fn)
    return pack_rows(values.view(len(x), -1), (exponent + E8M0_BIAS).to(torch.uint8))


# every byte's value: E4M3 (NaN for 0x7F / 0xFF) and E8M0 (2^(b-127); NaN for 0xFF)
_E4M3 = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
_E8M0 = torch.cat([torch.exp2(torch.arange(255, dtype=torch.float64) - E8M0_BIAS).float(),
                   torch.tensor([float("nan")])])  # fmt: skip


def decode_rows(raw: np.ndarray | torch.Tensor, dim: int) -> torch.Tensor:
    """float32 rows (N, dim) from stored (N, row_bytes(dim)) bytes (by table lookup: a
    numpy array is decoded on the host, a tensor on its device)."""
    if raw.shape[-1] != row_bytes(dim):
        raise InputError(f"FP8 rows of dim {dim} are {row_bytes(dim)} bytes, got {raw.shape[-1]}")
    if isinstance(raw, np.ndarray):
        data = raw.view(np.uint8)
        out = np.take(_E4M3.numpy(), data[..., :dim])
        scales = np.take(_E8M0.numpy(), data[..., dim:])
        blocks = out.reshape(*out.shape[:-1], -1, BLOCK)
        blocks *= scales[..., None]
        return torch.from_numpy(out)
    data = raw.view(torch.uint8).long()
    values = _E4M3.to(data.device)[data[..., :dim]]
    scales = _E8M0.to(data.device)[data[..., dim:]]
    return (values.unflatten(-1, (-1, BLOCK)) * scales.unsqueeze(-1)).flatten(-2)


def create_fp8_table(store: Store, name: str, rows: int, dim: int) -> TableSpec:
    """An int8 table holding ``rows`` FP8 rows of ``dim`` values."""
    return store.create_table(name, rows, row_bytes(dim), "int8")


def gather_fp8(store: Store, name: str, row_ids: np.ndarray, dim: int) -> torch.Tensor:
    """float32 rows (N, dim) of an FP8 table."""
    return decode_rows(store.gather(name, row_ids), dim)


def import_fp8_table(
    store: Store,
    name: str,
    chunks: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    rows: int,
    dim: int,
) -> TableSpec:
    """Copy a checkpoint's FP8 table into ``store`` bit for bit, chunk by chunk.

    ``chunks`` yields (values (n, dim) E4M3, scales (n, dim/32) E8M0) in row order; each
    chunk is one commit, so a table far larger than memory streams through.
    """
    spec = create_fp8_table(store, name, rows, dim)
    start = 0
    for values, scales in chunks:
        packed = pack_rows(values, scales)
        store.scatter(name, np.arange(start, start + len(packed)), packed)
        start += len(packed)
    if start != rows:
        raise InputError(f"table {name!r}: got {start} rows, expected {rows}")
    return spec
