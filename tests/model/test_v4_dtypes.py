"""A V4 model runs in bfloat16 and under bf16 autocast (as the GPU benchmarks run it), with
logits near the float32 model's: mixed dtypes (router weights in float32 under autocast)
must not reach an in-place op."""

import pytest
import torch
from engram_sdk.model.v4 import V4Config, build_v4

CFG = V4Config(vocab_size=300, index_n_heads=16)  # HCA, CSA, sliding, CSA; hash + top-k MoE


@pytest.mark.parametrize(
    ("dtype", "autocast"),
    [(torch.bfloat16, False), (torch.float32, True), (torch.bfloat16, True)],
)
def test_bf16_and_autocast_forward_stays_near_float32(dtype: torch.dtype, autocast: bool) -> None:
    ids = torch.randint(0, 300, (2, 60), generator=torch.Generator().manual_seed(0))
    model = build_v4(CFG, seed=1).eval()
    with torch.no_grad():
        want = model(ids)
        model.to(dtype)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            got = model(ids).float()
    assert got.isfinite().all()
    # bf16 keeps ~3 significant digits; a rare top-k flip moves a few positions more
    assert (got - want).abs().mean() < 0.05 * want.abs().mean()
