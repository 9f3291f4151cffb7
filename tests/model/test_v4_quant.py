"""Dequantising DeepSeek's FP8 / FP4 checkpoint tensors against torch's own float8 and a
hand-built E2M1 table."""

import pytest
import torch
from engram_sdk.model.quant import dequantize, dequantize_state, unpack_fp4

from engram_sdk.errors import InputError


def test_fp8_blocks_with_float32_and_e8m0_scales_dequantise_as_torch_float8() -> None:
    torch.manual_seed(0)
    w = torch.randn(256, 384) * 3
    blocks = w.view(2, 128, 3, 128)
    amax = blocks.abs().amax(dim=(1, 3))  # (2, 3)
    scale = amax / 448.0
    q = (blocks / scale[:, None, :, None]).view(256, 384).to(torch.float8_e4m3fn)
    want = (q.float().view(2, 128, 3, 128) * scale[:, None, :, None]).view(256, 384)
    assert torch.equal(dequantize(q, scale), want)
    exps = torch.ceil(torch.log2(scale)).clamp(-127, 127)
    q2 = (blocks / torch.exp2(exps)[:, None, :, None]).view(256, 384).to(torch.float8_e4m3fn)
    e8m0 = (exps + 127).to(torch.uint8)
    got = dequantize(q2, e8m0)
    assert torch.equal(
        got, (q2.float().view(2, 128, 3, 128) * torch.exp2(exps)[:, None, :, None]).view(256, 384)
    )
    torch.testing.assert_close(got, w, rtol=0.07, atol=0.01)  # E4M3 keeps 3 mantissa bits


def test_fp4_pairs_unpack_low_nibble_first_with_sign() -> None:
    packed = torch.tensor([[0x21, 0x9F]], dtype=torch.uint8).view(torch.int8)
    assert unpack_fp4(packed).tolist() == [[0.5, 1.0, -6.0, -0.5]]
    scale = torch.tensor([[128]], dtype=torch.uint8)  # 2^1, one scale for 4 inputs
    assert dequantize(packed, scale).tolist() == [[1.0, 2.0, -12.0, -1.0]]


def test_dequantize_state_drops_scales_and_keeps_plain_tensors() -> None:
    w = torch.ones(128, 128).to(torch.float8_e4m3fn)
    state = {"a.weight": w, "a.scale": torch.tensor([[2.0]]), "b.weight": torch.ones(3),
             "c.tid2eid": torch.arange(4)}  # fmt: skip
    out = dequantize_state(state)
    assert set(out) == {"a.weight", "b.weight", "c.tid2eid"}
    assert torch.equal(out["a.weight"], torch.full((128, 128), 2.0))
    with pytest.raises(InputError, match="grid"):
        dequantize(torch.ones(130, 128).to(torch.float8_e4m3fn), torch.ones(3, 1))
