"""The Triton kernels (sparse attention, indexer scores) against the torch path, interpreted.

Skipped where Triton is not installed; on a GPU, ``benchmarks/long_context_gpu.py`` runs the
same comparison on the device.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import torch
    from engram_sdk.model.sparse import EMPTY, sparse_attention, window_indices
    from engram_sdk.model.sparse_triton import sparse_attention_triton

    g = torch.Generator().manual_seed(0)
    for b, t, h, r, rope, s, k in [(2, 3, 4, 32, 8, 40, 16), (1, 2, 3, 48, 16, 100, 70)]:
        q = torch.randn(b, t, h, r + rope, generator=g)
        latent = torch.randn(b, s + 5, r + rope, generator=g)[:, :s]  # a view, as the cache
        pos = (s - t + torch.arange(t)).expand(b, t)
        idx = window_indices(pos, k)
        idx[:, :, :3] = EMPTY  # empty slots are skipped
        idx[0, 0] = EMPTY  # a query with no key at all gets zeros
        want = sparse_attention(q, latent, latent[..., :r], idx, 0.1)
        got = sparse_attention_triton(q, latent, latent[..., :r], idx, 0.1)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        assert got[0, 0].abs().max() == 0

    from engram_sdk.model.sparse import indexer_topk

    for b, t, h, d, s, k, window in [(2, 70, 3, 32, 150, 9, 0), (1, 5, 4, 20, 9, 4, 3)]:
        q, w = torch.randn(b, t, h, d, generator=g), torch.randn(b, t, h, generator=g)
        keys = torch.randn(b, s, d, generator=g)
        pos = (s - t + torch.arange(t)).expand(b, t).contiguous()
        args = dict(window=window, key_chunk=64, tile_elements=4096)
        fused = indexer_topk(q, w, keys, pos, k, fused=True, **args)
        plain = indexer_topk(q, w, keys, pos, k, fused=False, **args)
        assert torch.equal(fused.sort(-1).values, plain.sort(-1).values)
    print("ok")
    """
)


def test_triton_kernels_equal_the_torch_path_in_the_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
