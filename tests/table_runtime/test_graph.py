"""Decode steps recorded as a CUDA graph: fixed state buffers, what blocks recording, and
(on CUDA) replays bitwise equal between GPU-resident rows and pinned rows read in place."""

import pytest
import torch
from engram_sdk.model import ModelCache, build_model, get_preset
from engram_sdk.model.batch_cache import stack_caches

from engram_sdk.errors import InputError
from engram_sdk.table_runtime import attach_tables
from engram_sdk.table_runtime.graph import graph_blocker, graph_decode, keep_state

CFG = dict(tokenizer=None, vocab_size=300, max_seq_len=64)
DENSE = dict(CFG, n_dense_layers=4, hc_mult=1)  # recordable: no MoE (its host-sized GEMMs)


def _ids(seed: int, shape: tuple[int, int] = (2, 12)) -> torch.Tensor:
    return torch.randint(0, 300, shape, generator=torch.Generator().manual_seed(seed))


def test_state_kept_in_fixed_buffers_decodes_as_rebinding_does() -> None:
    """Decoding with the Engram state copied into the same buffers every step (what a
    replayed graph needs) gives the logits of ordinary decoding, bit for bit."""
    model = build_model(get_preset("tiny", **CFG), seed=5).eval()
    ids = _ids(1)
    with torch.no_grad():
        plain, fixed = ModelCache(), ModelCache()
        model(ids[:, :5], plain)
        model(ids[:, :5], fixed)
        buffers = None
        for i in range(5, ids.shape[1]):
            want = model(ids[:, i : i + 1], plain)
            got = model(ids[:, i : i + 1], fixed)
            buffers = keep_state(fixed, buffers)
            assert torch.equal(got, want)
            assert fixed.last_ids is buffers[0] and torch.equal(fixed.last_ids, plain.last_ids)
            convs = [lc.conv for lc in fixed.layers if lc.conv is not None]
            assert convs and all(any(c is b for b in buffers) for c in convs)
    assert fixed.last_host_ids is None  # stale once replays advance only the device


def test_graph_decode_names_what_blocks_recording() -> None:
    model = build_model(get_preset("tiny", **CFG), seed=5).eval()
    cache = ModelCache()
    assert "CUDA" in (graph_blocker(model, cache) or "")
    with pytest.raises(InputError, match="cannot be recorded as a CUDA graph"):
        graph_decode(model, cache)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="records CUDA graphs")
@pytest.mark.parametrize("backend", ["dram", "shards"])
def test_graphed_decode_from_a_store_bitwise_equal_gpu_rows(backend: str, tmp_path) -> None:
    """Pinned dram:// rows read in place inside the graph, shards:// rows staged by the
    host before each replay: the same logits as the graph over GPU-resident rows."""
    cfg = get_preset("tiny", **DENSE)
    reference = build_model(cfg, seed=6).cuda().eval()
    served = build_model(cfg, seed=6).cuda().eval()
    uri = "dram://" if backend == "dram" else f"shards://{tmp_path / 'rows'}"
    runtime = attach_tables(served, uri)
    ids = _ids(2, (4, 8))
    outputs = []
    with torch.no_grad():
        for step, model in ((reference, reference), (runtime, served)):
            cache = ModelCache()
            logits = step(ids, cache)[:, -1]
            cache = stack_caches(
                [cache], capacity=24, engram_context=model.hasher.context, pad_id=0
            )
            graph = graph_decode(step, cache)
            assert bool(graph.staged) == (step is runtime and backend == "shards")
            produced = []
            for _ in range(8):
                logits = graph.step(logits.argmax(-1, keepdim=True).cpu())
                produced.append(logits.clone())
            graph.finish()
            outputs.append(torch.stack(produced))
    assert torch.equal(outputs[0], outputs[1])


def test_prepare_seconds_counts_the_runtime_before_the_forward() -> None:
    """The stepping thread's time in the runtime is counted once per step, and reset zeroes it
    (the time itself is a benchmark's figure: the test counts the steps it covers)."""
    model = build_model(get_preset("tiny", **CFG), seed=5).eval()
    runtime = attach_tables(model, "dram://")
    with torch.no_grad():
        for _ in range(3):
            runtime(_ids(3))
    stats = runtime.stats
    assert stats.prepared_steps == 3 and stats.fetches > 0
    stats.reset()
    assert stats.prepared_steps == 0 and stats.prepare_seconds == 0 and stats.fetches == 0
    runtime.detach()


def _static_cache(step, ids: torch.Tensor) -> ModelCache:
    """A prefilled cache with room for 24 positions, made static (as a recording makes it)."""
    cache = ModelCache()
    step(ids, cache)
    context = 2  # the tiny preset's Engram look-back (max N-gram 3)
    cache = stack_caches([cache], capacity=24, engram_context=context, pad_id=0)
    for lc in cache.layers:
        lc.attn.make_static()
    return cache


def test_staged_rows_from_a_file_store_decode_bitwise(tmp_path) -> None:
    """What a recorded step replays for a shards table: the host hashes each step's ids and
    stages their rows in a fixed buffer; lookups return exactly those rows (bitwise the
    in-memory table's logits), and staging another step's rows changes the logits."""
    from engram_sdk.table_runtime.graph import GraphedDecode

    cfg = get_preset("tiny", **DENSE)
    reference = build_model(cfg, seed=7).eval()
    served = build_model(cfg, seed=7).eval()
    runtime = attach_tables(served, f"shards://{tmp_path / 'rows'}")
    ids = _ids(4, (3, 10))
    with torch.no_grad():
        assert reference.hasher.context == 2
        want_cache = _static_cache(reference, ids[:, :6])
        got_cache = _static_cache(runtime, ids[:, :6])
        other_want, other_got = (
            _static_cache(reference, ids[:, :6]),
            _static_cache(runtime, ids[:, :6]),
        )
        graph = GraphedDecode(runtime, got_cache)  # CPU: nothing recorded, staging only
        assert set(graph.staged) == set(cfg.engram_layer_ids)
        before = runtime.stats.rows_requested
        for i in range(6, ids.shape[1]):
            want = reference(ids[:, i : i + 1], want_cache)
            graph.stage(ids[:, i : i + 1])
            assert torch.equal(runtime(ids[:, i : i + 1], got_cache), want)
        heads = cfg.engram_heads_per_ngram * (cfg.engram_max_ngram - 1)
        staged = 4 * 3 * heads * len(cfg.engram_layer_ids)
        assert runtime.stats.rows_requested - before == staged  # staged, nothing fetched
        graph.stage((ids[:, 6:7] + 1) % 300)  # rows of another step than the one run
        want = reference(ids[:, 6:7], other_want)
        assert not torch.equal(runtime(ids[:, 6:7], other_got), want)
        graph.finish()
    runtime.detach()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="records CUDA graphs")
def test_graphed_decode_with_hot_rows_reads_hits_from_the_gpu_bitwise() -> None:
    """Pinned rows read in place, the warmed hot ones from the GPU cache: the same logits
    as GPU-resident rows; the cache admits nothing while the graph lives."""
    cfg = get_preset("tiny", **DENSE)
    reference = build_model(cfg, seed=6).cuda().eval()
    served = build_model(cfg, seed=6).cuda().eval()
    runtime = attach_tables(served, "dram://", hot_rows=2048)
    ids = _ids(2, (4, 8))
    runtime.warm_hot_rows(ids.reshape(-1), limit=256)
    outputs = []
    with torch.no_grad():
        for step, model in ((reference, reference), (runtime, served)):
            cache = ModelCache()
            logits = step(ids, cache)[:, -1]
            cache = stack_caches(
                [cache], capacity=24, engram_context=model.hasher.context, pad_id=0
            )
            graph = graph_decode(step, cache)
            produced = []
            for _ in range(8):
                logits = graph.step(logits.argmax(-1, keepdim=True).cpu())
                produced.append(logits.clone())
            if step is runtime:
                table = next(iter(runtime.tables.values()))
                with pytest.raises(InputError, match="frozen"):
                    table.hot.invalidate(table.hot.cached_ids()[:1])
            graph.finish()
            outputs.append(torch.stack(produced))
    assert torch.equal(outputs[0], outputs[1])
    hits, rows = next(iter(runtime.tables.values())).in_place_hits()
    assert rows > 0 and 0 < hits <= rows
    runtime.detach()
