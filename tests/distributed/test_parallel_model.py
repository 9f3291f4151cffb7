"""The parallelized model against the same model run in one process (gloo, CPU ranks).

Tolerance: the sharded and expert-parallel paths compute each token's rows and expert
outputs from the same numbers, but matrix products over a different number of rows (a
rank's slice vs the whole batch) may round differently in float32, and FSDP averages
gradients in a different order; 1e-5 absolute covers that. The optimizer step is SGD, whose
update is lr x gradient, so parameters stay within lr x 1e-5 (Adam's first step,
g / (|g| + eps), would turn rounding noise in near-zero gradients into full-size steps).
"""

from __future__ import annotations

import json

import pytest
import torch

from engram_sdk.distributed import RankFailed, spawn_local
from engram_sdk.distributed.checkpoint import dcp_to_checkpoint
from tests.distributed import workers

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def reports(folder, world):
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(world)]


@pytest.fixture(scope="module", params=[1, 2, 4])
def step_reports(request, tmp_path_factory):
    """Reports of one parallel step at world sizes 1, 2 and 4 (one job each)."""
    world = request.param
    folder = tmp_path_factory.mktemp(f"world{world}")
    spawn_local(workers.step_matches_reference, world, str(folder), {})
    return world, reports(folder, world)


def test_forward_backward_and_step_equal_one_process(step_reports):
    _, reps = step_reports
    for rep in reps:
        assert rep["missing_grads"] == []
        assert rep["logits"] <= 1e-5
        assert rep["grads"] <= 1e-5
        assert rep["params"] <= 1e-6


def test_uneven_rows_and_experts_without_tokens(tmp_path):
    # 5 experts over 4 ranks: ranks own 2, 2, 1, 0 experts; table rows do not divide by 4;
    # with 1 of 5 experts activated, some experts receive no token
    overrides = dict(
        n_routed_experts=5, n_expert_groups=1, n_limited_groups=1, n_activated_experts=1
    )
    spawn_local(workers.step_matches_reference, 4, str(tmp_path), overrides)
    for rep in reports(tmp_path, 4):
        assert rep["missing_grads"] == []
        assert rep["logits"] <= 1e-5 and rep["grads"] <= 1e-5 and rep["params"] <= 1e-6


def test_dedup_counters_match_a_numpy_count(step_reports):
    import numpy as np

    world, reps = step_reports
    if world == 1:
        pytest.skip("nothing is exchanged at world size 1")
    model = workers.tiny()
    ids = workers.batch()[:, :-1]
    addresses = model.engram_addresses(ids)
    per = workers.BATCH // world
    for rank, rep in enumerate(reps):
        mine = slice(rank * per, (rank + 1) * per)
        for layer, flat in addresses.items():
            stats = rep["stats"][f"blocks.{layer}.engram.table"]
            part = flat[mine].numpy()
            assert stats["ids_requested"] == part.size
            assert stats["ids_sent"] == np.unique(part).size


@pytest.mark.slow
def test_checkpoint_saved_at_two_loads_at_one_and_four(tmp_path):
    saved = tmp_path / "ckpt"
    spawn_local(workers.save_then_logits, 2, str(saved))
    expected = torch.load(saved / "logits.pt")
    for world in (1, 4):
        out = tmp_path / f"logits{world}.pt"
        spawn_local(workers.load_then_logits, world, str(saved), str(out))
        assert (torch.load(out) - expected).abs().max() <= 1e-5
    single = dcp_to_checkpoint(saved, tmp_path / "single")
    from engram_sdk.model.checkpoint import load_checkpoint

    model = load_checkpoint(single)
    with torch.no_grad():
        logits = model(workers.batch(2)[:, :-1])
    assert (logits - expected).abs().max() <= 1e-5


@pytest.mark.timeout(300)  # a hang fails here instead of blocking the suite
def test_a_dead_rank_fails_the_job_with_its_rank():
    with pytest.raises(RankFailed, match="rank 1 failed: exited with code 3"):
        spawn_local(workers.die_mid_step, 2, timeout_s=20)
