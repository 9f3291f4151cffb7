"""The architecture registry: each spec builds its debug model, its HF name mapping round-trips
bit for bit, and every preset is found under its architecture."""

import pytest
import torch
from engram_sdk.model.spec import ARCHITECTURES, get_spec, spec_of_preset

from engram_sdk.errors import InputError


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_each_architecture_builds_and_its_hf_mapping_round_trips(name: str) -> None:
    spec = get_spec(name)
    cfg = spec.config()
    model = spec.build(cfg).eval()
    state = model.state_dict()
    hf = spec.to_hf(state, cfg)
    assert all(k.startswith(("model.", "lm_head.")) for k in hf)  # transformers' names
    back = spec.from_hf(hf, cfg)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    with torch.no_grad():
        assert model(torch.randint(0, cfg.vocab_size, (1, 9))).shape == (1, 9, cfg.vocab_size)


def test_presets_belong_to_one_architecture_each() -> None:
    assert spec_of_preset("deepseek-v3-671b").name == "deepseek-v3"
    assert spec_of_preset("deepseek-v4-pro").name == "deepseek-v4"
    assert spec_of_preset("deepseek-v4.1-flash").name == "deepseek-v4.1"
    assert get_spec("deepseek-v4").config("deepseek-v4-flash").n_layers == 43
    with pytest.raises(InputError, match="unknown preset"):
        spec_of_preset("v4-1t")
    with pytest.raises(InputError, match="architecture"):
        get_spec("deepseek-v5")
