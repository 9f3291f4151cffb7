"""engram_sdk.model: a DeepSeek-style MoE transformer with Engram layers."""

from engram_sdk.model.config import PRESETS, ModelConfig, get_preset
from engram_sdk.model.transformer import ModelCache, Transformer


def build_model(
    cfg: ModelConfig | str, device: str = "cpu", seed: int | None = 0, engram_tables: bool = True
) -> Transformer:
    """A model for a config or preset name, initialised deterministically from ``seed``.

    ``engram_tables=False`` allocates no Engram tables (for tables bigger than the device or
    host memory): serve them from a store with
    ``engram_sdk.table_runtime.attach_tables(model, uri, export=False)`` before running it.
    """
    import torch

    if isinstance(cfg, str):
        cfg = get_preset(cfg)
    if seed is not None:
        torch.manual_seed(seed)
    return Transformer(cfg, engram_tables=engram_tables).to(device)


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
