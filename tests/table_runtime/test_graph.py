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
    assert "CUDA" in (graph_blocker(model, cache, 2) or "")
    with pytest.raises(InputError, match="cannot be recorded as a CUDA graph"):
        graph_decode(model, cache)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="records CUDA graphs")
def test_graphed_decode_in_place_rows_bitwise_equal_gpu_rows() -> None:
    cfg = get_preset("tiny", **DENSE)
    reference = build_model(cfg, seed=6).cuda().eval()
    served = build_model(cfg, seed=6).cuda().eval()
    runtime = attach_tables(served, "dram://")
    ids = _ids(2, (4, 8)).cuda()
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
                logits = graph.step(logits.argmax(-1, keepdim=True))
                produced.append(logits.clone())
            graph.finish()
            outputs.append(torch.stack(produced))
    assert torch.equal(outputs[0], outputs[1])


def test_prepare_seconds_counts_the_runtime_before_the_forward() -> None:
    """The stepping thread's time in the runtime is counted per step, and reset zeroes it."""
    model = build_model(get_preset("tiny", **CFG), seed=5).eval()
    runtime = attach_tables(model, "dram://")
    with torch.no_grad():
        runtime(_ids(3))
    stats = runtime.stats
    assert stats.prepare_seconds > 0 and stats.fetches > 0
    stats.reset()
    assert stats.prepare_seconds == 0 and stats.fetches == 0
    runtime.detach()
