"""Training store-served Engram tables: per-unique-row gradients and row-wise updates in the store."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engram_sdk.model import build_model, get_preset

from engram_sdk.errors import InputError
from engram_sdk.table_runtime import StoreTableOptimizer, attach_tables, table_name


def loss_of(step: Callable, ids: torch.Tensor) -> torch.Tensor:
    logits = step(ids[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


@pytest.mark.parametrize(
    ("backend", "kind"), [("lmdb", "adagrad"), ("shards", "sgd"), ("dram", "adagrad")]
)
def test_store_rows_get_the_dense_reference_update(backend: str, kind: str, tmp_path: Path) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    reference = build_model(cfg, seed=3)
    served = build_model(cfg, seed=3)
    uri = "dram://" if backend == "dram" else f"{backend}://{tmp_path / backend}"
    runtime = attach_tables(served, uri, trainable=True)
    store = runtime.store
    opt = runtime.optimizer(lr=0.05, kind=kind)
    for p in served.parameters():
        p.requires_grad_(False)  # only the store rows train here
    ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(5))
    before = {
        layer: t.embedding.weight.detach().double().numpy().copy()
        for layer, t in reference.engram_tables().items()
    }

    ref_loss = loss_of(reference, ids)
    ref_loss.backward()
    got_loss = loss_of(runtime, ids)
    assert torch.equal(got_loss, ref_loss)
    got_loss.backward()
    updated = opt.step()

    total = 0
    for layer, t in reference.engram_tables().items():
        g = t.embedding.weight.grad.double().numpy()
        touched = np.flatnonzero(np.abs(g).sum(1) > 0)
        total += len(touched)
        w = before[layer].copy()
        if kind == "adagrad":
            acc = (g[touched] ** 2).mean(1, keepdims=True)
            w[touched] -= 0.05 * g[touched] / (np.sqrt(acc) + 1e-8)
            state = store.gather(table_name(layer) + ".adagrad", touched)
            np.testing.assert_allclose(state, acc, rtol=1e-4)
        else:
            w[touched] -= 0.05 * g[touched]
        stored = store.gather(table_name(layer), np.arange(len(w)))
        np.testing.assert_allclose(stored, w, rtol=1e-5, atol=1e-6)
    assert updated >= total > 0
    runtime.detach()


def test_reopened_store_keeps_trained_rows_and_prefetch_is_patched(tmp_path: Path) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    model = build_model(cfg, seed=1)
    uri = f"shards://{tmp_path / 't'}"
    runtime = attach_tables(model, uri, trainable=True)
    opt = runtime.optimizer(lr=0.5, kind="sgd")
    ids = torch.randint(0, 300, (1, 10), generator=torch.Generator().manual_seed(0))
    nxt = ids[:, 1:]  # shares most N-grams (rows) with this step's batch
    with torch.no_grad():
        stale = runtime(nxt)
    runtime.prefetch(nxt)  # the next step's rows are fetched before this update
    loss_of(runtime, ids).backward()
    assert opt.step() > 0
    reused = runtime.stats.reused_prefetches
    with torch.no_grad():
        patched = runtime(nxt)  # served from the patched prefetch
        assert runtime.stats.reused_prefetches > reused
        refetched = runtime(nxt)  # read back from the store
    assert torch.equal(patched, refetched)
    assert not torch.equal(patched, stale)
    runtime.detach()
    fresh = build_model(cfg, seed=1).eval()
    runtime = attach_tables(fresh, uri, export=False)
    with torch.no_grad():
        assert torch.equal(runtime(nxt), refetched)
    runtime.detach()


def test_optimizer_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="expected 'adagrad' or 'sgd'"):
        StoreTableOptimizer({}, kind="adam")
    with pytest.raises(InputError, match="TrainableStoreTable"):
        StoreTableOptimizer({})
