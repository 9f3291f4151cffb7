"""The memory pipeline as a model: recall and end-to-end score with a real Memory."""

import pytest
from engram_sdk.evals import MemoryAdapter, OracleAdapter, run_ruler

pytest.importorskip("engram_sdk.memory")


def test_memory_pipeline_reports_recall_and_end_to_end(tmp_path):
    reader_saw = []

    class Reader(OracleAdapter):
        name = "oracle-reader"

        def answer(self, sample):
            reader_saw.append(len(sample.input))
            return super().answer(sample)

    m = MemoryAdapter(Reader(), max_tokens=400)
    r = run_ruler(
        m,
        tasks=["niah_single_1", "niah_multikey_2"],
        lengths=[4096],
        n_samples=2,
        out_dir=tmp_path,
        progress=False,
    )
    assert all(c.recall is not None for c in r.cells)
    # the reader only sees the recalled context, far less than the 4K haystack
    assert max(reader_saw) < 4096 * 4 / 2
    # an oracle reader finds exactly what the recalled context holds
    for c in r.cells:
        assert c.score == c.recall
    assert "Retrieval recall" in (tmp_path / "ruler-memory_400_oracle-reader.md").read_text()
