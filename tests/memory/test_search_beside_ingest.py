"""Searches on one thread while the same ``Memory`` ingests on another (one process)."""

from __future__ import annotations

import threading
from pathlib import Path

from engram_sdk.memory import Memory


def test_a_search_thread_during_ingest_leaves_the_view_complete(tmp_path: Path) -> None:
    """A search that refreshed the index view while the ingest's transaction was open once
    published the older table over the writer's; later refreshes skipped the reread and the
    same Memory kept answering from before the ingest (1 hit of 1,601)."""
    src = tmp_path / "src"
    src.mkdir()
    names = set()
    for i in range(300):
        (src / f"f{i}.txt").write_text(
            f"file {i} uniqueword{i % 50} zzqx\n" * 60 + "x" * 2000 + "\n"
        )
        names.add(f"f{i}.txt")
    mem = Memory.open(f"lmdb://{tmp_path / 'mem'}")
    mem.add("seed zzqx passage", source="seed")
    stop = threading.Event()
    errors: list[BaseException] = []

    def search_until_stopped() -> None:
        while not stop.is_set():
            try:
                mem.search("zzqx", k="all")
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=search_until_stopped)
    thread.start()
    try:
        mem.ingest(src, progress=False, batch_bytes=1 << 30)
    finally:
        stop.set()
        thread.join()
    assert not errors
    found = {Path(h.source).name for h in mem.search("zzqx", k="all")}
    assert found == names | {"seed"}
    mem.close()
