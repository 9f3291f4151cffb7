"""The gate between a Memory's searches and its writes (threads of one process)."""

from __future__ import annotations

import threading

from engram_sdk.memory.write_gate import WriteGate


def test_a_write_holds_searches_back_until_it_ends() -> None:
    gate = WriteGate()
    entered = threading.Event()

    def read() -> None:
        with gate.reading():
            entered.set()

    with gate:
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert not entered.wait(0.2)
    reader.join(5)
    assert entered.is_set()


def test_the_writing_thread_nests_writes_and_reads() -> None:
    gate = WriteGate()
    with gate, gate, gate.reading(), gate.reading():
        pass
    done = threading.Event()

    def write() -> None:
        with gate:
            done.set()

    writer = threading.Thread(target=write)  # the gate is free again
    writer.start()
    writer.join(5)
    assert done.is_set()


def test_a_read_nested_in_a_held_read_passes_a_waiting_writer() -> None:
    gate = WriteGate()
    holding, writer_waits, nested_done, wrote = (threading.Event() for _ in range(4))

    def read_twice() -> None:
        with gate.reading():
            holding.set()
            writer_waits.wait(5)
            with gate.reading():
                nested_done.set()

    def write() -> None:
        holding.wait(5)
        threading.Timer(0.1, writer_waits.set).start()  # after this writer queues
        with gate:
            wrote.set()

    threads = [threading.Thread(target=f, daemon=True) for f in (read_twice, write)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert nested_done.is_set() and wrote.is_set()
