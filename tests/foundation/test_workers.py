"""The one worker pool: parts all run, errors surface, nesting on a busy pool cannot deadlock."""

import threading

import pytest

from engram_sdk import workers


def test_run_parts_runs_every_part_once() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def note(part: int) -> None:
        with lock:
            seen.append(part)

    workers.run_parts(note, range(50))
    assert sorted(seen) == list(range(50))


def test_run_parts_raises_the_first_error_after_every_part_ran() -> None:
    ran: list[int] = []

    def fail_on_odd(part: int) -> None:
        ran.append(part)
        if part % 2:
            raise ValueError(f"part {part}")

    with pytest.raises(ValueError, match="part"):
        workers.run_parts(fail_on_odd, range(6))
    assert sorted(ran) == list(range(6))


def test_nested_parts_finish_when_every_pool_thread_waits_on_them() -> None:
    """Each outer part occupies a pool thread and waits for inner parts on the same pool."""
    done: list[int] = []
    lock = threading.Lock()

    def inner(part: int) -> None:
        with lock:
            done.append(part)

    def outer(part: int) -> None:
        workers.run_parts(inner, [part * 10 + i for i in range(4)])

    finished = threading.Event()

    def run() -> None:
        workers.run_parts(outer, range(workers.POOL_THREADS * 2))
        finished.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert finished.wait(60), "nested run_parts deadlocked"
    assert sorted(done) == sorted(
        p * 10 + i for p in range(workers.POOL_THREADS * 2) for i in range(4)
    )
