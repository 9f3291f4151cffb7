"""``engram bench prefetch`` measures every store and checks logits against the baseline."""

from pathlib import Path

from engram_sdk.model import get_preset

from engram_sdk.bench.prefetch import PLACEMENTS, run_prefetch_bench


def test_bench_runs_every_placement_with_equal_logits(tmp_path: Path) -> None:
    rows = run_prefetch_bench(
        table_rows=3001, batch=1, seq=16, steps=3, cache_rows=500, folder=tmp_path
    )
    cfg = get_preset("tiny")
    dim = cfg.engram_embed_per_ngram // cfg.engram_heads_per_ngram
    assert [r["placement"] for r in rows[1:]] == PLACEMENTS
    for r in rows[1:]:
        assert r["bitwise_equal"] is True
        assert r["rows_requested"] >= r["unique_rows"] > 0
        assert abs(r["MB_moved"] * 1e6 - r["unique_rows"] * 4 * dim) < 1e-3  # float32 rows
    assert rows[-1]["cache_hit_rate"] is not None
    assert (tmp_path / "shards").exists() and (tmp_path / "lmdb").exists()
