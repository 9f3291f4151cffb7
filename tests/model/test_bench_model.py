"""engram bench model: runs end to end on CPU and compares against the same-weights HF model."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")


def test_bench_model_rows_and_logits_match_hf() -> None:
    from engram_sdk.bench.model import run_bench

    rows = run_bench("tiny", batch=1, seq=16, steps=1, device="cpu")
    assert rows[0]["name"].startswith("transformers")
    assert len(rows) == 3  # baseline, ours plain, ours as configured (tiny has Engram)
    assert rows[0]["train_ratio"] == 1.0 and rows[0]["fwd_ratio"] == 1.0
    for r in rows:
        assert r["train"] > 0 and r["fwd"] > 0
        assert r["train_ratio"] == pytest.approx(r["train"] / rows[0]["train"])
    # the baseline is our own weights exported to HF: a throughput row of a wrong model fails here
    assert rows[0]["max_logit_diff"] < 1e-4
