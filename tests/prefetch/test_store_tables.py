"""Store-backed Engram tables give bit-identical logits to GPU-resident ones, on every backend."""

from pathlib import Path

import pytest
import torch
from engram_sdk.model import ModelCache, build_model, get_preset

from engram_sdk.prefetch import attach_store_tables, prefetch_next
from engram_sdk.prefetch.store_table import StoreTable

BACKENDS = ["dram", "lmdb", "shards", "shards+cache"]


def uri_for(backend: str, tmp: Path) -> tuple[str, int]:
    if backend == "dram":
        return "dram://", 0
    scheme = backend.split("+")[0]
    return f"{scheme}://{tmp / scheme}", (500 if backend.endswith("cache") else 0)


def logits(model: torch.nn.Module, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        full = model(ids)
        cache = ModelCache()
        parts = [model(ids[:, :6], cache)] + [
            model(ids[:, i : i + 1], cache) for i in range(6, ids.shape[1])
        ]
    return full, torch.cat(parts, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_tables_are_bitwise_equal_in_prefill_and_decoding(
    backend: str, tmp_path: Path
) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    reference = build_model(cfg, seed=4).eval()
    served = build_model(cfg, seed=4).eval()
    ids = torch.randint(0, 300, (2, 14), generator=torch.Generator().manual_seed(2))
    want_full, want_inc = logits(reference, ids)
    uri, cache_rows = uri_for(backend, tmp_path)
    store, stats = attach_store_tables(served, uri, cache_rows=cache_rows)
    assert all(isinstance(t, StoreTable) for t in served.engram_tables().values())
    got_full, got_inc = logits(served, ids)
    assert torch.equal(got_full, want_full)
    assert torch.equal(got_inc, want_inc)
    heads = cfg.engram_heads_per_ngram * (cfg.engram_max_ngram - 1)
    assert (
        stats.rows_requested == 2 * len(cfg.engram_layer_ids) * 2 * 14 * heads
    )  # prefill + decoding
    assert 0 < stats.unique_rows <= stats.rows_requested and stats.dedup_ratio >= 1
    assert stats.bytes_moved == stats.unique_rows * 4 * served.engram_tables()[1].dim
    if cache_rows:
        assert stats.cache_hit_rate is not None
    store.close()


def test_prefetch_for_the_next_step_is_reused(tmp_path: Path) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    model = build_model(cfg).eval()
    store, stats = attach_store_tables(model, f"shards://{tmp_path / 's'}")
    batches = [torch.randint(0, 300, (2, 10)) for _ in range(3)]
    with torch.no_grad():
        for i, ids in enumerate(batches):
            if i + 1 < len(batches):
                prefetch_next(model, batches[i + 1])
            model(ids)
    assert stats.reused_prefetches == 2 * len(cfg.engram_layer_ids)
    store.close()


def test_a_prefetched_batch_is_hashed_once(tmp_path: Path) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    model = build_model(cfg).eval()
    store, _ = attach_store_tables(model, "dram://")
    calls = []
    real = model.hasher.hash_torch
    model.hasher.hash_torch = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    batches = [torch.randint(0, 300, (2, 10)) for _ in range(3)]
    with torch.no_grad():
        for i, ids in enumerate(batches):
            if i + 1 < len(batches):
                prefetch_next(model, batches[i + 1])
            model(ids)
    # batch 0 is hashed by forward, batches 1 and 2 by prefetch_next only
    assert len(calls) == len(batches) * len(cfg.engram_layer_ids)
    store.close()


def test_reopened_store_serves_a_fresh_model(tmp_path: Path) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    trained = build_model(cfg, seed=1).eval()
    uri = f"lmdb://{tmp_path / 'tables'}"
    store, _ = attach_store_tables(build_model(cfg, seed=1), uri)
    store.close()
    fresh = build_model(cfg, seed=1).eval()
    store, _ = attach_store_tables(fresh, uri, export=False)
    ids = torch.randint(0, 300, (1, 9))
    with torch.no_grad():
        assert torch.equal(fresh(ids), trained(ids))
    store.close()
