"""The train profile's trace summary (benchmarks/engram_paper_trace.py) on a hand-made trace."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).parents[2] / "benchmarks" / "engram_paper_trace.py"


@pytest.fixture(scope="module")
def trace_module():
    spec = importlib.util.spec_from_file_location("engram_paper_trace_t", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def x(cat: str, name: str, pid: int, tid: int, ts: float, dur: float) -> dict:
    return {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur}


def test_busy_idle_side_and_blocking_calls_per_step(tmp_path: Path, trace_module) -> None:
    host, gpu = (100, 1), 0
    events = [
        x("user_annotation", "step", *host, 0, 1000),
        x("user_annotation", "step", *host, 1000, 1000),
        x("user_annotation", "forward", *host, 10, 400),
        x("cuda_runtime", "cudaLaunchKernel", *host, 20, 5),
        x("cuda_runtime", "cudaStreamSynchronize", *host, 30, 300),
        x("cuda_runtime", "cudaMalloc", 100, 2, 40, 50),  # another thread of the process
        x("cpu_op", "aten::mm", 100, 2, 40, 30),
        x("cpu_op", "aten::mm", *host, 40, 60),
        # compute stream 7: [100, 600] and [500, 900] overlap -> busy 800; [1500, 1900] -> 400
        x("kernel", "gemm", gpu, 7, 100, 500),
        x("kernel", "gemm", gpu, 7, 500, 400),
        x("kernel", "gemm", gpu, 7, 1500, 400),
        x("gpu_memcpy", "Memcpy HtoD", gpu, 9, 200, 100),  # a side stream
        {"ph": "i", "name": "instant", "pid": 0, "tid": 0, "ts": 5},  # not a span: ignored
    ]
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"traceEvents": events}))
    s = trace_module.summarize(path, steps=2)
    assert s.steps == 2
    assert s.wall_ms == pytest.approx((1900 - 100) / 1e3 / 2)  # the device's window
    assert s.compute_busy_ms == pytest.approx(1200 / 1e3 / 2)
    assert s.compute_idle_ms == pytest.approx((1800 - 1200) / 1e3 / 2)
    assert s.other_streams_ms == pytest.approx(100 / 1e3 / 2)
    assert s.api_calls == pytest.approx(3 / 2)
    assert s.blocking["cudaStreamSynchronize"] == pytest.approx((0.5, 0.15))
    assert s.blocking["cudaMalloc (other thread)"] == pytest.approx((0.5, 0.025))
    assert "cudaLaunchKernel" not in s.blocking
    assert s.phases_ms == {"forward": pytest.approx(0.2)}
    assert s.worker_ms == pytest.approx(0.015)
    assert s.cpu_ops_ms == {"aten::mm": pytest.approx(0.03)}
    assert s.kernels_ms == {"gemm": pytest.approx(0.65), "Memcpy HtoD": pytest.approx(0.05)}
    again = trace_module.summarize(path, steps=2)
    lines = trace_module.report({"gpu-resident": s, "dram": again}, "gpu-resident")
    assert lines[0].split()[0] == "placement" and lines[1].startswith("gpu-resident")
    assert "total +0.00 ms/step" in lines[-3] and len(lines) == 1 + 2 + 1 + 2 + 1 + 1 + 2
