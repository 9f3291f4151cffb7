"""Staged row writes: the last write of each id wins, whatever the order (a dict as oracle)."""

import numpy as np
import pytest
from engram_sdk.stores.pending import Pending


@pytest.mark.parametrize("layout", ["increasing", "disjoint-runs", "overlapping", "with-empty"])
def test_final_rows_match_a_dict(layout: str) -> None:
    rng = np.random.default_rng(len(layout))
    for _ in range(50):
        pending, oracle = Pending(), {}
        start = 0
        for _w in range(int(rng.integers(1, 5))):
            if layout == "overlapping":
                ids = rng.integers(0, 40, int(rng.integers(1, 20)))
            else:
                n = int(rng.integers(0 if layout == "with-empty" else 1, 10))
                ids = np.arange(start, start + n) if layout != "overlapping" else ids
                start += n + int(rng.integers(0, 3)) * (layout == "disjoint-runs")
            values = rng.standard_normal((len(ids), 2)).astype(np.float32)
            pending.scatter("t", ids.astype(np.int64), values)
            oracle.update(zip(ids.tolist(), values.tolist(), strict=True))
        final = pending.final_rows("t")
        assert final is not None
        ids, values = final
        assert ids.tolist() == sorted(oracle)
        assert values.tolist() == [oracle[i] for i in sorted(oracle)]
