"""DeepSeek-V4 models for benchmarks/long_context_gpu.py's prefill / decode section.

``--presets v4-small`` (or ``v4-tiny``, which ``--smoke`` runs) builds a V4 model with every
attention type of the released presets (sliding window, compressed sparse with the lightning
indexer's top-k, heavily compressed); mode ``dense`` runs its dense reference attention
(``V4Attention.dense_reference``), every sparse mode the O(T·k) path.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

_SWA, _CSA, _HCA = (
    "sliding_attention",
    "compressed_sparse_attention",
    "heavily_compressed_attention",
)
PRESETS: dict[str, dict] = {
    # DeepSeek-V4-Flash's attention (head_dim 512, window 128, ratios 4 / 128, 64 index heads
    # of 128, top-512) at a smaller width and depth, one layer of each type and a second CSA
    "v4-small": dict(
        vocab_size=16384, dim=1024, n_layers=4, n_heads=16, head_dim=512, rope_head_dim=64,
        q_lora_rank=512, o_groups=4, o_lora_rank=256, window_size=128,
        attn_types=[_SWA, _CSA, _HCA, _CSA], compress_ratio_csa=4, compress_ratio_hca=128,
        index_n_heads=64, index_head_dim=128, index_topk=512,
        mlp_types=["hash_moe", "moe", "moe", "moe"], n_routed_experts=8,
        n_activated_experts=2, moe_inter_dim=1024,
    ),
    "v4-tiny": dict(
        vocab_size=512, window_size=16, compress_ratio_hca=32, index_topk=8, index_n_heads=16,
        n_layers=3, attn_types=[_SWA, _CSA, _HCA], mlp_types=["hash_moe", "moe", "moe"],
    ),
}  # fmt: skip


def is_v4(preset: str) -> bool:
    return preset.startswith("v4-")


def build(preset: str, *, dense: bool, max_len: int, device: str) -> torch.nn.Module:
    """A V4 model of ``preset`` (bf16 on CUDA) whose attention is dense or sparse."""
    from engram_sdk.model.v4 import V4Config, build_v4
    from engram_sdk.model.v4.attention import use_dense_reference

    if preset not in PRESETS:
        raise SystemExit(f"unknown V4 preset {preset!r}; expected one of {sorted(PRESETS)}")
    model = build_v4(V4Config(**PRESETS[preset], max_seq_len=max_len), device, seed=0).eval()
    if device == "cuda":
        model = model.to(torch.bfloat16)
    use_dense_reference(model, dense)
    return model


def runner(
    model: torch.nn.Module, chunk: int
) -> tuple[Callable[[torch.Tensor], None], Callable[[torch.Tensor], None]]:
    """(prefill(ids), step(ids)) over one fresh cache: ids fed ``chunk`` tokens at a time."""
    from engram_sdk.model.v4 import V4Cache

    cache = V4Cache()

    def step(ids: torch.Tensor) -> None:
        model(ids, cache=cache)

    def prefill(ids: torch.Tensor) -> None:
        for t0 in range(0, ids.shape[1], chunk):
            step(ids[:, t0 : t0 + chunk])

    return prefill, step


def check(device: str, tokens: int = 600) -> str:
    """Sparse vs dense logits (float32, v4-tiny, one shot and chunked with the cache): one line."""
    from engram_sdk.model.v4 import V4Cache, V4Config, build_v4
    from engram_sdk.model.v4.attention import use_dense_reference

    model = build_v4(V4Config(**PRESETS["v4-tiny"], max_seq_len=tokens), device, seed=0).eval()
    ids = torch.randint(0, 512, (2, tokens), device=device)
    with torch.no_grad():
        use_dense_reference(model)
        dense = model(ids)
        use_dense_reference(model, False)
        sparse = model(ids)
        cache = V4Cache()
        cuts = [0, 1, 37, tokens // 2, tokens - 3, tokens - 2, tokens - 1, tokens]
        chunked = [model(ids[:, a:b], cache=cache) for a, b in itertools.pairwise(cuts)]
        chunked = torch.cat(chunked, dim=1)
    scale = dense.abs().max().item()
    return (
        f"v4 check on {device}: max |sparse - dense| {(sparse - dense).abs().max().item():.2e}, "
        f"chunked {(chunked - dense).abs().max().item():.2e} (logits up to {scale:.2f})"
    )


if __name__ == "__main__":  # python benchmarks/long_context_v4.py: the check on this machine
    print(check("cuda" if torch.cuda.is_available() else "cpu"))
