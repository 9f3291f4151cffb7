"""Dequantising DeepSeek's own checkpoint layout on load: FP8 and packed FP4 weights.

A quantised ``X.weight`` comes with a scale grid ``X.scale`` (or ``X.weight_scale_inv``):
FP8 E4M3 weights with one scale per 128×128 block, FP4 E2M1 expert weights (two values a
byte, low nibble first, stored as int8) with one scale per 32 inputs. The block size is
read off the grid's shape. Scales are float32 or E8M0 (``float8_e8m0fnu``, or uint8
exponents: 2^(byte - 127)). Everything is dequantised to float32; nothing stays quantised.
"""

from __future__ import annotations

import torch

from engram_sdk.errors import InputError

E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
_SCALE_SUFFIXES = ("scale", "weight_scale_inv")


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """(…, K/2) bytes of E2M1 pairs → (…, K) float32 (low nibble is the even element)."""
    magnitudes = torch.tensor(E2M1_VALUES, dtype=torch.float32, device=packed.device)
    table = torch.cat([magnitudes, -magnitudes])
    u8 = packed.contiguous().view(torch.uint8).long()
    pairs = torch.stack([table[u8 & 0xF], table[u8 >> 4]], dim=-1)
    return pairs.flatten(-2)


def scale_values(scale: torch.Tensor) -> torch.Tensor:
    """A scale grid as float32 (E8M0 bytes decoded)."""
    if scale.dtype == torch.uint8:
        return torch.exp2(scale.float() - 127.0)
    return scale.float()


def dequantize(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 weight from an FP8 / packed-FP4 tensor and its block scale grid."""
    fp4 = weight.dtype in (torch.int8, getattr(torch, "float4_e2m1fn_x2", torch.int8))
    values = unpack_fp4(weight) if fp4 else weight.float()
    rows, cols = values.shape[-2:]
    grid_r, grid_c = scale.shape[-2:]
    if rows % grid_r or cols % grid_c:
        raise InputError(
            f"weight {tuple(values.shape)} does not split into a {grid_r}x{grid_c} grid"
        )
    s = scale_values(scale)
    s = s.repeat_interleave(rows // grid_r, dim=-2).repeat_interleave(cols // grid_c, dim=-1)
    return values * s


def dequantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every quantised weight of a state dict dequantised, scale tensors dropped."""
    out: dict[str, torch.Tensor] = {}
    scales = set()
    for name, t in state.items():
        if not name.endswith(".weight"):
            continue
        stem = name[: -len("weight")]
        scale_name = next((stem + s for s in _SCALE_SUFFIXES if stem + s in state), None)
        if scale_name is not None:
            out[name] = dequantize(t, state[scale_name])
            scales.add(scale_name)
    for name, t in state.items():
        if name not in out and name not in scales:
            out[name] = t.float() if t.is_floating_point() else t
    return out
