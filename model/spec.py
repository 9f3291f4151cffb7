"""One record per architecture: config class, builder, presets and HF adapter (torchtitan's
``ModelSpec``). ``ARCHITECTURES`` is the single registry; everything an architecture needs
to be built, named on the Hub and converted is reached from its spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel

from engram_sdk.errors import InputError

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build, load and export one architecture."""

    name: str
    hf_architecture: str
    config_cls: type[BaseModel]
    build: Callable[..., torch.nn.Module]
    presets: Mapping[str, Mapping[str, Any]]
    to_hf: Callable[[State, Any], State]  # our state dict → HF names
    from_hf: Callable[[State, Any], State]  # HF names → ours
    load_hf: Callable[..., torch.nn.Module]
    export_hf: Callable[..., Any]
    debug: Mapping[str, Any] = field(default_factory=dict)  # a tiny CPU config

    def config(self, preset: str | None = None, **overrides: Any) -> BaseModel:
        """The config of ``preset`` (None: the tiny debug model), with overrides."""
        if preset is None:
            return self.config_cls(**{**self.debug, **overrides})
        if preset not in self.presets:
            raise InputError(
                f"{self.name} has no preset {preset!r}; expected {sorted(self.presets)}"
            )
        return self.config_cls(**{**self.presets[preset], **overrides})


def _v3() -> ModelSpec:
    from engram_sdk.model import build_model
    from engram_sdk.model.config import PRESETS, ModelConfig
    from engram_sdk.model.hf import export_hf, hf_to_ours, load_hf, ours_to_hf

    return ModelSpec(
        name="deepseek-v3", hf_architecture="DeepseekV3ForCausalLM", config_cls=ModelConfig,
        build=build_model, presets=PRESETS, to_hf=ours_to_hf, from_hf=hf_to_ours,
        load_hf=load_hf, export_hf=export_hf,
        debug=dict(tokenizer=None, vocab_size=300, engram_layer_ids=[], hc_mult=1),
    )  # fmt: skip


def _v4() -> ModelSpec:
    from engram_sdk.model.v4 import V4Config, build_v4
    from engram_sdk.model.v4.hf import export_hf_v4, hf_to_ours, load_hf_v4, ours_to_hf
    from engram_sdk.model.v4.presets import V4_PRESETS

    return ModelSpec(
        name="deepseek-v4", hf_architecture="DeepseekV4ForCausalLM", config_cls=V4Config,
        build=build_v4, presets=V4_PRESETS, to_hf=lambda state, cfg: ours_to_hf(state),
        from_hf=hf_to_ours, load_hf=load_hf_v4, export_hf=export_hf_v4,
    )  # fmt: skip


def _v41() -> ModelSpec:
    from engram_sdk.model.v4.presets import V41_PRESETS
    from engram_sdk.model.v4.v41_config import V41Config
    from engram_sdk.model.v4.v41_hf import export_hf_v41, hf_to_ours, load_hf_v41, ours_to_hf
    from engram_sdk.model.v4.v41_model import build_v41

    return ModelSpec(
        name="deepseek-v4.1", hf_architecture="DeepseekV41ForCausalLM", config_cls=V41Config,
        build=build_v41, presets=V41_PRESETS, to_hf=lambda state, cfg: ours_to_hf(state),
        from_hf=hf_to_ours, load_hf=load_hf_v41, export_hf=export_hf_v41,
        debug=dict(engram_layer_ids=[1], engram_vocab_size=1000, engram_n_heads=2,
                   engram_head_dim=32, engram_max_ngram_size=3),
    )  # fmt: skip


_FACTORIES: dict[str, Callable[[], ModelSpec]] = {
    "deepseek-v3": _v3,
    "deepseek-v4": _v4,
    "deepseek-v4.1": _v41,
}
ARCHITECTURES = tuple(_FACTORIES)


def get_spec(name: str) -> ModelSpec:
    """The spec of an architecture (``deepseek-v3``, ``deepseek-v4``, ``deepseek-v4.1``)."""
    if name not in _FACTORIES:
        raise InputError(f"unknown architecture {name!r}; expected one of {list(_FACTORIES)}")
    return _FACTORIES[name]()


def spec_of_preset(preset: str) -> ModelSpec:
    """The architecture a preset belongs to."""
    for name in ARCHITECTURES:
        spec = get_spec(name)
        if preset in spec.presets:
            return spec
    raise InputError(f"unknown preset {preset!r}")
