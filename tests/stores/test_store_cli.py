"""``engram store`` and ``engram bench stores`` through the real CLI: exit codes, sizes, ratios."""

import contextlib
import importlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engram_sdk.stores import open_store

from engram_sdk.cli.main import main

ENGRAM = [
    sys.executable,
    "-c",
    "import sys; from engram_sdk.cli.main import main; sys.exit(main())",
]


def engram(*args: str) -> subprocess.CompletedProcess:
    """The ``engram`` command in this interpreter (a process costs ~3-10 s of imports)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        _console_to(out, "engram_sdk.cli.store_cmd", "engram_sdk.bench.stores"),
    ):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _console_to(stream: io.StringIO, *modules: str):
    """Point our command modules' rich consoles at ``stream`` (200 columns: no wrapping)."""
    from rich.console import Console

    saved = {name: importlib.import_module(name).console for name in modules}
    for name in modules:
        importlib.import_module(name).console = Console(
            file=stream, width=200, no_color=True, highlight=False
        )
    try:
        yield
    finally:
        for name, console in saved.items():
            importlib.import_module(name).console = console


@pytest.mark.slow
def test_a_real_engram_process_exits_1_on_a_bad_store(tmp_path: Path) -> None:
    uri, _ = records_store(tmp_path / "l")
    data = tmp_path / "l" / "data.mdb"
    raw = bytearray(data.read_bytes())
    for copy in re.finditer(re.escape(ITEMS[7][1]), raw):
        raw[copy.start() + 5] ^= 0x01
    data.write_bytes(bytes(raw))
    run = subprocess.run([*ENGRAM, "store", "verify", uri], capture_output=True, text=True)
    assert run.returncode == 1 and "BAD" in run.stdout


def records_store(folder: Path) -> tuple[str, int]:
    """A store of records only (like a memory), ~3 MB, and the bytes of its keys and values."""
    uri = f"lmdb://{folder}"
    with open_store(uri, "w") as s:
        s.put_many("mem.passage", ITEMS)
    return uri, sum(len(k) + len(v) for k, v in ITEMS)


ITEMS = [(b"key%05d" % i, np.random.default_rng(i).bytes(1000)) for i in range(3000)]


def test_verify_exits_1_and_names_the_file_when_something_is_wrong(tmp_path: Path) -> None:
    uri, _ = records_store(tmp_path / "l")
    ok = engram("store", "verify", uri)
    assert ok.returncode == 0, ok.stderr
    assert "3,000 records" in ok.stdout and " 0 B" not in ok.stdout
    data = tmp_path / "l" / "data.mdb"
    raw = bytearray(data.read_bytes())
    for copy in re.finditer(re.escape(ITEMS[1234][1]), raw):  # the live one and stale copies
        raw[copy.start() + 20] ^= 0x10
    data.write_bytes(bytes(raw))
    bad = engram("store", "verify", uri)
    assert bad.returncode == 1
    assert "BAD" in bad.stdout and str(data) in bad.stdout.replace("\n", "")
    missing = engram("store", "verify", f"lmdb://{tmp_path / 'nothing'}")
    assert missing.returncode != 0 and "no LMDB store" in missing.stderr


def test_info_and_convert_count_records(tmp_path: Path) -> None:
    uri, record_bytes = records_store(tmp_path / "l")
    info = json.loads(engram("store", "info", uri, "--json").stdout)
    assert info["record_bytes"] == record_bytes and info["namespaces"] == {"mem.passage": 3000}
    text = engram("store", "info", uri).stdout
    assert "3,000 records" in text and "2.9 MiB" in text
    done = engram("store", "convert", uri, f"shards://{tmp_path / 's'}", "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    copied = json.loads(done.stdout)
    assert copied["records"] == 3000 and copied["bytes"] == record_bytes
    same = engram("store", "convert", uri, uri)
    assert same.returncode != 0 and "same store" in same.stderr


def test_bench_ratios_are_the_printed_rates_divided(tmp_path: Path) -> None:
    run = engram(
        "bench",
        "stores",
        "--rows",
        "20000",
        "--batch",
        "4096",
        "--repeats",
        "1",
        "--folder",
        str(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in run.stdout.splitlines()
        if line.count("│") >= 5 and re.search(r"\d\.\d\dx", line)
    ]
    assert len(rows) == 7  # dram, lmdb x2, shards, lmdb after a commit, cache, no cache
    for what, rate, base, ratio, _write in rows:
        printed = float(ratio.rstrip("x"))
        assert abs(printed - float(rate) / float(base)) <= 0.006, (what, rate, base, ratio)
    names = [r[0] for r in rows]
    assert any("no checksums" in n for n in names) and any("xxh3" in n for n in names)
