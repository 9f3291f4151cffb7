"""V4 / V4.1 models keep their complex RoPE tables through dtype casts (``.to(bf16)``, as the
GPU benchmarks do): a plain ``nn.Module`` cast turns them real and drops the sines."""

import warnings

import pytest
import torch
from engram_sdk.model.v4 import V4Config, V41Config, build_v4, build_v41


@pytest.mark.parametrize("build", [lambda: build_v4(V4Config()), lambda: build_v41(V41Config())])
def test_rope_tables_survive_dtype_casts(build) -> None:  # type: ignore[no-untyped-def]
    model = build()
    tables = {name: getattr(model, name).clone() for name in ("freqs_main", "freqs_compress")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns "Casting complex values to real"
        for cast in (lambda m: m.to(torch.bfloat16), lambda m: m.half(), lambda m: m.float()):
            cast(model)
            for name, table in tables.items():
                assert torch.equal(getattr(model, name), table)
    assert model.head.weight.dtype == torch.float32  # the rest of the model did follow


@pytest.mark.parametrize("build", [lambda: build_v4(V4Config()), lambda: build_v41(V41Config())])
def test_rope_tables_of_a_meta_model_are_rebuilt_by_to_empty(build) -> None:  # type: ignore[no-untyped-def]
    want = build()
    with torch.device("meta"):
        model = type(want)(want.config)
    model.to_empty(device="cpu")
    for name in ("freqs_main", "freqs_compress"):
        assert torch.equal(getattr(model, name), getattr(want, name))
