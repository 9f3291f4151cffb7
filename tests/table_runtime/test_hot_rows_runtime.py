"""A hot-row cache inside the runtime: rows stay the store's, bit for bit, and training rereads."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engram_sdk.model import ModelCache, build_model, get_preset
from engram_sdk.stores import open_store

from engram_sdk.errors import InputError
from engram_sdk.table_runtime import StoreTable, attach_tables, table_name

CFG = dict(tokenizer=None, vocab_size=300, max_seq_len=64)


def prefill_and_decode(step, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        cache = ModelCache()
        parts = [step(ids[:, :5], cache)] + [
            step(ids[:, i : i + 1], cache) for i in range(5, ids.shape[1])
        ]
    return torch.cat([step(ids), *parts], 1)


def test_hot_rows_give_the_store_rows_and_read_fewer_of_them(tmp_path: Path) -> None:
    cfg = get_preset("tiny", **CFG)
    reference = build_model(cfg, seed=6).eval()
    served = build_model(cfg, seed=6).eval()
    ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(8))
    want = prefill_and_decode(reference, ids)
    runtime = attach_tables(served, f"lmdb://{tmp_path / 'lmdb'}", hot_rows=4096)
    assert all(t.hot is not None for t in served.engram_tables().values())
    first = prefill_and_decode(runtime, ids)
    after_first = runtime.stats.bytes_moved
    again = prefill_and_decode(runtime, ids)
    assert torch.equal(first, want) and torch.equal(again, want)
    # every row of the second pass was admitted during the first: nothing more read
    assert runtime.stats.bytes_moved == after_first
    assert runtime.stats.cache_hit_rate is not None and runtime.stats.cache_hit_rate > 0.4
    runtime.detach()


def test_trained_rows_are_reread_not_served_stale(tmp_path: Path) -> None:
    cfg = get_preset("tiny", **CFG)
    ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(9))
    losses = {}
    for hot in (0, 4096):
        model = build_model(cfg, seed=7)
        for p in model.parameters():
            p.requires_grad_(False)  # only the store rows train here
        runtime = attach_tables(model, f"shards://{tmp_path / str(hot)}", trainable=True,
                                hot_rows=hot)  # fmt: skip
        opt = runtime.optimizer(lr=0.5, kind="sgd")
        seen = []
        for _ in range(3):
            logits = runtime(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
            loss.backward()
            opt.step()
            seen.append(loss.detach())
        stored = np.concatenate([
            runtime.store.gather(name, np.arange(runtime.store.table(name).rows))
            for name in map(table_name, model.engram_tables())
        ])  # fmt: skip
        losses[hot] = (torch.stack(seen), stored)
        runtime.detach()
    assert not torch.equal(losses[0][0][0], losses[0][0][2])  # the rows did train
    assert torch.equal(losses[0][0], losses[4096][0])
    np.testing.assert_array_equal(losses[0][1], losses[4096][1])


def test_negative_hot_rows_is_refused(tmp_path: Path) -> None:
    model = build_model(get_preset("tiny", **CFG), seed=1)
    store_uri = f"lmdb://{tmp_path / 'lmdb'}"
    attach_tables(model, store_uri).detach()
    layer = next(iter(model.engram_tables()))
    with pytest.raises(InputError, match="hot_rows"):
        StoreTable(open_store(store_uri, "r"), table_name(layer), hot_rows=-1)


def test_warming_caches_the_rows_sample_text_reads_most_and_keeps_logits() -> None:
    from collections import Counter

    cfg = get_preset("tiny", **CFG)
    reference = build_model(cfg, seed=6).eval()
    served = build_model(cfg, seed=6).eval()
    text = torch.randint(0, 40, (3000,), generator=torch.Generator().manual_seed(2))  # repetitive
    runtime = attach_tables(served, "dram://", hot_rows=64)
    admitted = runtime.warm_hot_rows(text, limit=50)
    for layer, table in runtime.tables.items():
        canon = served.canonical.numpy()[text.numpy()][None]
        counted = Counter(served.hasher.hash(canon, layer, flat=True).reshape(-1).tolist())
        ranked = sorted(counted, key=lambda row: (-counted[row], row))
        cached = set(table.hot.cached_ids().tolist())
        assert admitted[layer] == 50 == len(cached)
        assert cached == set(ranked[:50]) or counted[ranked[49]] == counted[ranked[50]]
        assert min(counted[r] for r in cached) >= counted[ranked[50]]
    ids = text[:24].reshape(2, 12)
    assert torch.equal(prefill_and_decode(runtime, ids), prefill_and_decode(reference, ids))
    assert runtime.stats.cache_hit_rate is not None and runtime.stats.cache_hit_rate > 0.3
    runtime.detach()
    with attach_tables(served, "dram://") as plain, pytest.raises(InputError, match="hot_rows"):
        plain.warm_hot_rows(text)
