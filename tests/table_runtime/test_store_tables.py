"""The table runtime gives logits bit-identical to in-memory Engram tables, on every backend."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from engram_sdk.model import ModelCache, build_model, get_preset
from engram_sdk.stores import open_store

from engram_sdk.engram import EmbeddingTable
from engram_sdk.errors import InputError
from engram_sdk.table_runtime import StoreTable, attach_tables

BACKENDS = ["dram", "lmdb", "shards", "shards+cache"]


def uri_for(backend: str, tmp: Path) -> tuple[str, int]:
    if backend == "dram":
        return "dram://", 0
    scheme = backend.split("+")[0]
    return f"{scheme}://{tmp / scheme}", (500 if backend.endswith("cache") else 0)


def logits(step: Callable, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefill logits, and the same sequence decoded token by token after a 6-token prompt."""
    with torch.no_grad():
        full = step(ids)
        cache = ModelCache()
        parts = [step(ids[:, :6], cache)] + [
            step(ids[:, i : i + 1], cache) for i in range(6, ids.shape[1])
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
    runtime = attach_tables(served, uri, cache_rows=cache_rows)
    stats = runtime.stats
    assert all(isinstance(t, StoreTable) for t in served.engram_tables().values())
    got_full, got_inc = logits(runtime, ids)
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
    direct_full, direct_inc = logits(served, ids)  # the model alone: each lookup fetches
    assert torch.equal(direct_full, want_full)
    assert torch.equal(direct_inc, want_inc)
    runtime.detach()


def test_detach_gives_the_model_its_own_tables_back(tmp_path: Path) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    model = build_model(cfg, seed=4).eval()
    own = model.engram_tables()
    with attach_tables(model, f"lmdb://{tmp_path / 'l'}") as runtime:
        assert all(isinstance(t, StoreTable) for t in model.engram_tables().values())
    assert model.engram_tables() == own
    assert all(isinstance(t, EmbeddingTable) for t in own.values())
    with pytest.raises(InputError, match="detached"):
        runtime(torch.zeros(1, 3, dtype=torch.long))
    with open_store(f"lmdb://{tmp_path / 'l'}", "r") as store:  # closed by detach: reopens
        assert store.table("engram.layer1").rows == own[1].rows


def test_prefetch_for_the_next_step_is_reused(tmp_path: Path) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    model = build_model(cfg).eval()
    runtime = attach_tables(model, f"shards://{tmp_path / 's'}")
    batches = [torch.randint(0, 300, (2, 10)) for _ in range(3)]
    with torch.no_grad():
        for i, ids in enumerate(batches):
            if i + 1 < len(batches):
                runtime.prefetch(batches[i + 1])
            runtime(ids)
    assert runtime.stats.reused_prefetches == 2 * len(cfg.engram_layer_ids)
    runtime.detach()


def test_a_prefetched_batch_is_hashed_once(tmp_path: Path) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    model = build_model(cfg).eval()
    runtime = attach_tables(model, "dram://")
    calls = []
    real = model.hasher.hash_torch
    model.hasher.hash_torch = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    batches = [torch.randint(0, 300, (2, 10)) for _ in range(3)]
    with torch.no_grad():
        for i, ids in enumerate(batches):
            if i + 1 < len(batches):
                runtime.prefetch(batches[i + 1])
            runtime(ids)
    # batch 0 is hashed by its step, batches 1 and 2 by their prefetch only
    assert len(calls) == len(batches) * len(cfg.engram_layer_ids)
    runtime.detach()


def test_reopened_store_serves_a_fresh_model(tmp_path: Path) -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    trained = build_model(cfg, seed=1).eval()
    uri = f"lmdb://{tmp_path / 'tables'}"
    attach_tables(build_model(cfg, seed=1), uri).detach()
    fresh = build_model(cfg, seed=1).eval()
    runtime = attach_tables(fresh, uri, export=False)
    ids = torch.randint(0, 300, (1, 9))
    with torch.no_grad():
        assert torch.equal(runtime(ids), trained(ids))
    runtime.detach()


def test_the_model_takes_precomputed_addresses_and_checks_their_layers() -> None:
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    model = build_model(cfg, seed=4).eval()
    ids = torch.randint(0, 300, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(ids)
        assert torch.equal(model(ids, addresses=model.engram_addresses(ids)), want)
        other = {layer: torch.zeros(2, 9, 1, dtype=torch.long) for layer in (0, 99)}
        with pytest.raises(InputError, match="addresses are for Engram layers"):
            model(ids, addresses=other)


def test_decoding_after_device_steps_reads_the_prefix_back(tmp_path: Path) -> None:
    """A cache whose earlier steps left no host copy of the Engram prefix still decodes right."""
    cfg = get_preset("tiny", tokenizer=None, vocab_size=300, max_seq_len=64)
    reference = build_model(cfg, seed=4).eval()
    served = build_model(cfg, seed=4).eval()
    ids = torch.randint(0, 300, (1, 12), generator=torch.Generator().manual_seed(3))
    _, want = logits(reference, ids)
    runtime = attach_tables(served, f"lmdb://{tmp_path / 'l'}")
    with torch.no_grad():
        cache = ModelCache()
        parts = [runtime(ids[:, :6], cache)]
        for i in range(6, ids.shape[1]):
            cache.last_host_ids = None  # as after a step whose ids were on the device
            parts.append(runtime(ids[:, i : i + 1], cache))
    assert torch.equal(torch.cat(parts, 1), want)
    runtime.detach()
