"""Runner: oracle 100, empty 0, the JSONL cache (resume, --force, torn lines), reports on disk."""

import json

import pytest
from engram_sdk.evals import (
    CallableAdapter,
    EmptyAdapter,
    OracleAdapter,
    PredictionCache,
    TiktokenCounter,
    ruler_samples,
    run_niah,
    run_ruler,
    run_samples,
)
from engram_sdk.evals.tasks import resolve_tasks

ALL = resolve_tasks("ruler")


def test_oracle_scores_100_and_empty_scores_0_on_every_task(tmp_path):
    good = run_ruler(
        OracleAdapter(), tasks=ALL, lengths=[2048], n_samples=2, out_dir=tmp_path, progress=False
    )
    bad = run_ruler(
        EmptyAdapter(), tasks=ALL, lengths=[2048], n_samples=2, out_dir=tmp_path, progress=False
    )
    assert set(good.tasks) == set(ALL) and len(ALL) == 12  # 11 tasks + qa_synthetic
    assert all(c.score == 100.0 for c in good.cells) and good.average[2048] == 100.0
    assert all(c.score == 0.0 for c in bad.cells) and bad.average[2048] == 0.0
    md = (tmp_path / "ruler-oracle.md").read_text()
    assert "| niah_single_1 | 100.0 |" in md and "**average**" in md
    saved = json.loads((tmp_path / "ruler-empty.json").read_text())
    assert saved["format_version"] == 1 and saved["average"] == {"2048": 0.0}
    assert (tmp_path / "ruler-oracle.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_half_right_model_scores_by_rulers_formula(tmp_path):
    samples = ruler_samples(["niah_multivalue"], [2048], 2, TiktokenCounter())
    first = samples[0].outputs[:2]  # 2 of 4 values for sample 0, nothing for sample 1

    def model(s):
        return " ".join(first) if s.id == samples[0].id else "no idea"

    preds = run_samples(
        samples, CallableAdapter(model, takes="sample"), tmp_path / "p.jsonl", progress=False
    )
    assert [p.score for p in preds] == [0.5, 0.0]
    from engram_sdk.evals import build_report

    assert build_report("ruler", "m", "c", 42, preds).cells[0].score == 25.0


def test_cache_resumes_and_force_redoes(tmp_path):
    samples = ruler_samples(["niah_single_1", "vt"], [1024], 3, TiktokenCounter())
    calls = []

    def model(prompt):
        calls.append(prompt)
        return "x"

    m = CallableAdapter(model, name="counting")
    run_samples(samples[:4], m, tmp_path / "p.jsonl", progress=False)
    assert len(calls) == 4
    run_samples(samples, m, tmp_path / "p.jsonl", progress=False)
    assert len(calls) == 6  # only the two new ones
    other = CallableAdapter(model, name="other-model")  # cache is keyed by model too
    run_samples(samples[:1], other, tmp_path / "p.jsonl", progress=False)
    assert len(calls) == 7
    run_samples(samples, m, tmp_path / "p.jsonl", force=True, progress=False)
    assert len(calls) == 13
    assert len(PredictionCache(tmp_path / "p.jsonl").records) == 7


def test_torn_last_line_is_ignored_and_closed_before_appending(tmp_path):
    samples = ruler_samples(["niah_single_1"], [1024], 2, TiktokenCounter())
    path = tmp_path / "p.jsonl"
    run_samples(samples[:1], OracleAdapter(), path, progress=False)
    with path.open("a") as f:
        f.write('{"format_version": 1, "sample_id": "abc", "mod')  # a kill mid-write
    cache = PredictionCache(path)
    assert cache.skipped_lines == 1 and len(cache.records) == 1
    run_samples(samples, OracleAdapter(), cache, progress=False)
    again = PredictionCache(path)
    assert again.skipped_lines == 1 and len(again.records) == 2


def test_niah_grid_report_and_heatmap(tmp_path):
    r = run_niah(
        OracleAdapter(),
        lengths=[1024, 2048],
        depths=[0, 50, 100],
        out_dir=tmp_path,
        progress=False,
    )
    assert r.depths == [0.0, 50.0, 100.0] and r.lengths == [1024, 2048]
    assert len(r.cells) == 6 and all(c.score == 100.0 for c in r.cells)
    assert (tmp_path / "niah-oracle.png").stat().st_size > 1000
    assert "| 50% | 100.0 | 100.0 |" in (tmp_path / "niah-oracle.md").read_text()


def test_model_context_limit_is_respected(tmp_path):
    from engram_sdk.errors import InputError

    m = CallableAdapter(lambda p: "", name="small")
    m.max_context = 1000
    with pytest.raises(InputError, match="context of 1000"):
        run_ruler(
            m,
            tasks=["niah_single_1"],
            lengths=[2048],
            n_samples=1,
            out_dir=tmp_path,
            progress=False,
        )


def test_identical_samples_keep_one_cell_each(tmp_path) -> None:
    """Depths 0% and 0.5% of a 2K haystack give byte-identical samples (one id); both cells stay."""
    from engram_sdk.evals import OracleAdapter, run_niah

    report = run_niah(
        OracleAdapter(), lengths=(2048,), depths=(0.0, 0.5), out_dir=tmp_path, progress=False
    )
    assert sorted((c.length, c.depth) for c in report.cells) == [(2048, 0.0), (2048, 0.5)]
