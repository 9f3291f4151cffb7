"""CPU cost of starting ``engram`` commands, against the interpreter and ``import torch``.

Each command runs in a fresh interpreter, alternating with the baselines, ``--repeats``
times; the table shows median CPU seconds (user + sys of the child, which the load of other
processes disturbs less than wall time) and each command's ratio to ``import torch``.

    python benchmarks/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile

CASES = {
    "python -c pass (baseline)": ["-c", "pass"],
    "python -c 'import torch' (baseline)": ["-c", "import torch"],
    "engram version": ["-m", "engram_sdk.cli.main", "version"],
    "engram --help": ["-m", "engram_sdk.cli.main", "--help"],
    "engram search": ["-m", "engram_sdk.cli.main", "search", "x", "--store", "dram://"],
    "engram model presets": ["-m", "engram_sdk.cli.main", "model", "presets"],
}


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    """User + system CPU seconds of one child interpreter running ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv} exited {done.returncode}:\n{done.stderr}")
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per case (median kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, ENGRAM_HOME=home)
        samples: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(args.repeats):
            for name, argv in CASES.items():
                samples[name].append(cpu_seconds(argv, env))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    torch_cost = medians["python -c 'import torch' (baseline)"]
    print(f"{'case':38} {'CPU s':>7} {'÷ import torch':>15}")
    for name, value in medians.items():
        print(f"{name:38} {value:7.2f} {value / torch_cost:14.2f}x")


if __name__ == "__main__":
    main()
