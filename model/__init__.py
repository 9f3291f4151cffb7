"""engram_sdk.model: a DeepSeek-style MoE transformer with Engram layers."""

from engram_sdk.model.config import PRESETS, ModelConfig, get_preset
from engram_sdk.model.transformer import ModelCache, Transformer


def build_model(cfg: ModelConfig | str, device: str = "cpu", seed: int | None = 0) -> Transformer:
    """A model for a config or preset name, initialised deterministically from ``seed``."""
    import torch

    if isinstance(cfg, str):
        cfg = get_preset(cfg)
    if seed is not None:
        torch.manual_seed(seed)
    return Transformer(cfg).to(device)


def save_checkpoint(*args, **kwargs):
    """See :func:`engram_sdk.model.checkpoint.save_checkpoint`."""
    from engram_sdk.model.checkpoint import save_checkpoint as save

    return save(*args, **kwargs)


def load_checkpoint(*args, **kwargs):
    """See :func:`engram_sdk.model.checkpoint.load_checkpoint`."""
    from engram_sdk.model.checkpoint import load_checkpoint as load

    return load(*args, **kwargs)


__all__ = [
    "PRESETS",
    "ModelCache",
    "ModelConfig",
    "Transformer",
    "build_model",
    "get_preset",
    "load_checkpoint",
    "save_checkpoint",
]
