"""The parts of ``engram bench serve`` a reader of its table relies on."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from engram_sdk.bench.serve_parts import (
    cpu_seconds,
    ingest_corpus,
    sample_questions,
    thread_cpu_seconds,
)
from engram_sdk.memory import Memory


def test_questions_are_phrases_from_the_ingested_real_text(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [f"alpha_{i} beta_{i} gamma_{i} delta_{i} epsilon_{i}" for i in range(300)]
    (corpus / "a.txt").write_text("\n".join(lines[:150]) + "\n")
    (corpus / "b.txt").write_text("\n".join(lines[150:]) + "\n")
    uri = f"lmdb://{tmp_path / 'mem'}"
    megabytes = ingest_corpus(uri, [corpus])
    total = sum(len(p.read_bytes()) for p in corpus.iterdir())
    assert megabytes == pytest.approx(total / 1e6)
    with Memory.open(uri, mode="r") as mem:
        questions = sample_questions(mem, 12)
    text = "\n".join(lines)
    assert len(questions) == 12
    assert all(len(q.split()) == 4 and q in text for q in questions)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_seconds_follow_the_process_clock() -> None:
    before, clock = cpu_seconds(os.getpid()), time.process_time()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    spent, measured = cpu_seconds(os.getpid()), time.process_time() - clock
    assert before is not None and spent is not None
    assert spent - before == pytest.approx(measured, abs=0.05)
    assert cpu_seconds(2**22 + 12345) is None  # no such process


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_thread_cpu_seconds_follow_the_process_clock_to_the_millisecond() -> None:
    before, clock = thread_cpu_seconds(os.getpid()), time.process_time()
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    spent, measured = thread_cpu_seconds(os.getpid()), time.process_time() - clock
    assert before is not None and spent is not None
    assert spent - before == pytest.approx(measured, abs=0.005)
    assert thread_cpu_seconds(2**22 + 12345) is None  # no such process


def test_servers_start_outside_the_callers_folder(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``python -m`` puts the working folder first on sys.path: a baseline server started
    from a checkout's root imported that checkout, not the baseline (both rows measured the
    same code). The server must start in its log's folder."""
    from engram_sdk.bench.serve import _start_server

    caller = tmp_path / "checkout"
    caller.mkdir()
    monkeypatch.chdir(caller)
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\npwd\n")
    fake_python.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    log = work / "server.log"
    _start_server(str(fake_python), 0, "http://127.0.0.1:1", "lmdb:///nowhere", log).wait()
    assert os.path.realpath(log.read_text().strip()) == os.path.realpath(work)
