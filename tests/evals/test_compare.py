"""`engram eval compare`: alone vs through memory, n/a outside the window, the report folder
loaded in a real headless chromium."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from engram_sdk.evals.compare import NOT_IN_WINDOW, CompareConfig, run_compare
from engram_sdk.evals.oracle import OracleAdapter

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    config = CompareConfig(
        model="oracle",
        tasks=["niah_single_1", "niah_multikey_2"],
        lengths=[1024, 2048],
        depths=[0, 100],
        n_samples=2,
        memory_budget=400,
        window=1536,
        out_dir=out,
        progress=False,
        workers=1,
    )
    report = run_compare(config, model=OracleAdapter())
    return out, report


def test_prompts_beyond_the_window_are_marked_not_dropped(report_dir):
    out, _ = report_dir
    saved = json.loads((out / "compare.json").read_text())
    keys = {(c["task"], c["length"], c["depth"]) for c in saved["cells"]}
    expected = {(t, n, None) for t in ("niah_single_1", "niah_multikey_2") for n in (1024, 2048)}
    expected |= {("niah", n, d) for n in (1024, 2048) for d in (0.0, 100.0)}
    assert keys == expected
    for c in saved["cells"]:
        if c["length"] == 2048:
            assert c["alone"] is None and c["alone_status"] == NOT_IN_WINDOW
        else:
            assert c["alone"] == 100.0  # the oracle reads the whole prompt
    assert NOT_IN_WINDOW in (out / "compare.md").read_text()


def test_memory_scores_match_an_independent_recall_check(report_dir):
    out, report = report_dir
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    mem = [p for p in preds if p["model"].startswith("memory[400,focus]")]
    assert len(mem) == 2 * 2 * 2 + 2 * 2 * 2  # every sample, also those beyond the window
    for c in report.cells:
        ps = [
            p
            for p in mem
            if p["task"] == c.task and p["length"] == c.length and p["depth"] == c.depth
        ]
        found = [all(o in p["prediction"] for o in p["outputs"]) for p in ps]
        assert c.memory == pytest.approx(100 * sum(found) / len(found))
        assert c.recall == pytest.approx(100 * sum(p["info"]["recall"] for p in ps) / len(ps))


def test_index_html_renders_every_image_in_headless_chromium(report_dir, tmp_path):
    out, _ = report_dir
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM}")
    page = (out / "index.html").read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) == 7 and all((out / i).is_file() for i in images)
    probe = (
        "<script>window.addEventListener('load',()=>{const im=[...document.images];"
        "document.body.dataset.images=im.length;document.body.dataset.broken="
        "im.filter(i=>!(i.complete&&i.naturalWidth>0)).length;});</script></body>"
    )
    check = out / "check.html"
    check.write_text(page.replace("</body>", probe))
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--allow-file-access-from-files",
            "--virtual-time-budget=10000",
            "--dump-dom",
            check.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-images="7"' in body and 'data-broken="0"' in body, body


def test_memory_answers_on_worker_processes_equal_one_process(report_dir, tmp_path):
    _, one = report_dir
    config = CompareConfig(
        model="oracle",
        tasks=["niah_single_1", "niah_multikey_2"],
        grid=False,
        alone=False,
        lengths=[1024, 2048],
        n_samples=2,
        memory_budget=400,
        window=1536,
        out_dir=tmp_path,
        progress=False,
        workers=1,
        answer_processes=2,
    )
    report = run_compare(config)
    for cell in report.cells:
        same = one.cell(cell.task, cell.length)
        assert (cell.n, cell.memory, cell.recall) == (same.n, same.memory, same.recall)
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    processes = {json.loads(line)["info"]["process"] for line in lines}
    assert len(lines) == 8 and os.getpid() not in processes


def test_worker_processes_need_private_memories(tmp_path):
    with pytest.raises(ValueError, match="dram://"):
        CompareConfig(model="oracle", answer_processes=2, memory_uri=f"lmdb://{tmp_path}/m")
