"""A runner SIGKILLed mid-run resumes without redoing any finished sample."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from engram_sdk.evals import (
    CallableAdapter,
    PredictionCache,
    TiktokenCounter,
    ruler_samples,
    run_samples,
)

CHILD = textwrap.dedent("""
    import sys, time
    from engram_sdk.evals import CallableAdapter, TiktokenCounter, run_samples, ruler_samples
    samples = ruler_samples(["niah_single_1", "niah_multikey_2"], [1024], 5, TiktokenCounter())
    def slow(s):
        time.sleep(0.25)
        return " ".join(s.outputs)
    run_samples(samples, CallableAdapter(slow, name="slow", takes="sample"), sys.argv[1], progress=False)
""")


def test_sigkill_mid_run_then_resume(tmp_path):
    cache_path = tmp_path / "predictions.jsonl"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(cache_path)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if cache_path.exists() and cache_path.read_text().count("\n") >= 3:
                break
            if child.poll() is not None:
                break
            time.sleep(0.02)
        assert child.poll() is None, "child finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    done = {sid for sid, _ in PredictionCache(cache_path).records}
    samples = ruler_samples(["niah_single_1", "niah_multikey_2"], [1024], 5, TiktokenCounter())
    assert 3 <= len(done) < len(samples)
    asked = []

    def model(s):
        asked.append(s.id)
        return " ".join(s.outputs)

    preds = run_samples(
        samples, CallableAdapter(model, name="slow", takes="sample"), cache_path, progress=False
    )
    assert not set(asked) & done
    assert set(asked) | done == {s.id for s in samples}
    assert [p.sample_id for p in preds] == [s.id for s in samples]
    assert all(p.score == 1.0 for p in preds)
