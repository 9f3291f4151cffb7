"""DeepSeek-V4.1's Engram wiring: addressing from the config, and reading a checkpoint's
FP8 Engram tables chunk by chunk (for copying them into a store)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from engram_sdk.model.v4.config import V4Config
from engram_sdk.model.v4.v41_config import V41Config
from safetensors import safe_open

from engram_sdk.engram import EngramV41
from engram_sdk.errors import InputError
from engram_sdk.hashing import NgramConfig, NgramHasher


def engram_layer(cfg: V4Config | V41Config, layer_id: int, rows: int) -> EngramV41:
    """V4.1's Engram module for block ``layer_id``: one hash column per (order, head), rows of
    ``engram_head_dim``, ``rows`` rows per column."""
    columns = (cfg.engram_max_ngram_size - 1) * cfg.engram_n_heads
    return EngramV41(
        layer_id, cfg.dim, cfg.hc_mult, columns, cfg.engram_head_dim, rows, eps=cfg.norm_eps
    )


def engram_hasher(cfg: V4Config | V41Config, pad_canonical_id: int) -> NgramHasher:
    """V4.1's addressing: orders 2..N × n_heads columns, primes searched upward from
    ``engram_vocab_size``, DEAD ids blocking the look-back."""
    hasher = NgramHasher(
        NgramConfig(
            vocab_size=cfg.engram_compressed_vocab_size or cfg.vocab_size,
            max_ngram_size=cfg.engram_max_ngram_size,
            n_head_per_ngram=cfg.engram_n_heads,
            engram_vocab_size=[cfg.engram_vocab_size] * (cfg.engram_max_ngram_size - 1),
            layer_ids=cfg.engram_layer_ids,
            pad_id=pad_canonical_id,
            block_dead=True,
        )
    )
    rows = [hasher.table_rows(i) for i in cfg.engram_layer_ids]
    if cfg.engram_num_embeddings is not None and list(cfg.engram_num_embeddings) != rows:
        raise InputError(f"engram_num_embeddings {cfg.engram_num_embeddings} != primes' {rows}")
    return hasher


def _tensor_files(folder: Path) -> dict[str, Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: folder / file for name, file in weight_map.items()}
    single = folder / "model.safetensors"
    if not single.is_file():
        raise InputError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    with safe_open(str(single), "pt") as f:
        return dict.fromkeys(f.keys(), single)


def engram_table_names(folder: str | Path, layer: int) -> tuple[str, str]:
    """The (values, scales) tensor names of one layer's Engram table in a checkpoint."""
    files = _tensor_files(Path(folder))
    for prefix in ("", "model."):
        stem = f"{prefix}layers.{layer}.engram.embed."
        if stem + "weight" in files and stem + "scale" in files:
            return stem + "weight", stem + "scale"
    raise InputError(f"{folder}: no FP8 Engram table for layer {layer} (engram.embed.weight/scale)")


def iter_engram_chunks(
    folder: str | Path, layer: int, chunk_rows: int = 1 << 20
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(values E4M3 (n, dim), scales E8M0 (n, dim/32)) of one layer's table, in row order,
    read ``chunk_rows`` at a time without loading the table."""
    folder = Path(folder)
    files = _tensor_files(folder)
    names = engram_table_names(folder, layer)
    with safe_open(str(files[names[0]]), "pt") as fv, safe_open(str(files[names[1]]), "pt") as fs:
        values, scales = fv.get_slice(names[0]), fs.get_slice(names[1])
        rows = values.get_shape()[0]
        for start in range(0, rows, chunk_rows):
            stop = min(rows, start + chunk_rows)
            yield values[start:stop], scales[start:stop]
