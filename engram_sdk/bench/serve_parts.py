"""The pieces ``engram bench serve`` is built from: the stub upstream, the memory it asks
about and the questions, ports, waiting for a server, and the CPU clock of a process."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import subprocess
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engram_sdk.memory import Memory

REPLY = ["Hello", " from", " the", " stub", " upstream", "."]


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str) -> None:
        # one write: headers and body in separate segments meet delayed ACKs (~40 ms)
        head = (
            f"HTTP/1.1 {status} OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.wfile.write(head.encode() + body)

    def do_GET(self) -> None:
        body = {"object": "list", "data": [{"id": "stub", "object": "model"}]}
        self._send(200, json.dumps(body).encode(), "application/json")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        events = [
            {"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
            for t in REPLY
        ]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6}})
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self._send(200, text.encode(), "text/event-stream")


class _StubServer(ThreadingHTTPServer):
    request_queue_size = 256  # 32 clients connect at once; the default backlog of 5 resets them
    daemon_threads = True


def run_stub(port: int) -> None:
    _StubServer(("127.0.0.1", port), _Stub).serve_forever()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(
    url: str,
    timeout_s: float = 300,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``url`` until it answers 200; a ``proc`` that exits first fails with its ``log``."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(
                f"engram serve exited {proc.returncode} before {url} answered:\n{tail}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout_s:.0f} s")


def fill_memory(uri: str, megabytes: float, seed: int = 7) -> list[str]:
    """``megabytes`` of word text as 64 kB documents; returns question phrases found in it."""
    from engram_sdk.memory import Memory

    rng = random.Random(seed)
    vocab = [f"w{rng.randrange(36**4):x}" for _ in range(20000)]
    questions = []
    with Memory.open(uri) as mem:
        for i in range(max(1, int(megabytes * 1e6 / 64e3))):
            words = rng.choices(vocab, k=9000)
            lines = (" ".join(words[j : j + 12]) for j in range(0, len(words), 12))
            mem.add("\n".join(lines), source=f"doc-{i}.txt")
            questions.append(" ".join(words[100:104]))
    return questions


def ingest_corpus(uri: str, folders: list[Path]) -> float:
    """Ingest real ``folders`` into the memory at ``uri``; returns the MB of text indexed."""
    from engram_sdk.memory import Memory

    total = 0
    with Memory.open(uri) as mem:
        for folder in folders:
            total += mem.ingest(folder, progress=False).bytes_indexed
    return total / 1e6


def sample_questions(memory: Memory, n: int, seed: int = 7) -> list[str]:
    """``n`` four-word phrases taken from random lines of the memory's passages."""
    rng = random.Random(seed)
    sid = memory.scope_id("default")
    total = int(memory.stats()["scopes"]["default"]["passages"]) if sid is not None else 0
    out: list[str] = []
    for _ in range(50):
        if len(out) >= n or total == 0:
            break
        pids = [rng.randint(1, total) for _ in range(4 * n)]
        for passage in memory.passages(sid, pids):  # type: ignore[arg-type]
            lines = [] if passage is None else passage.text.splitlines()
            words = re.findall(r"[A-Za-z_]\w{2,}", rng.choice(lines)) if lines else []
            if len(words) >= 4:
                at = rng.randrange(len(words) - 3)
                out.append(" ".join(words[at : at + 4]))
    if not out:
        raise ValueError("the memory has no passages to ask about")
    return out[:n]


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` so far (Linux ``/proc``; else None),
    in clock ticks (10 ms): every thread that ever ran is counted."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def thread_cpu_seconds(pid: int) -> float | None:
    """CPU seconds the live threads of ``pid`` have run, to the nanosecond (the sum of
    ``/proc/PID/task/*/schedstat``; a thread that has exited is not counted, so this suits
    processes whose threads last, as a server's pools do); None where unknown."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError):  # a thread that just exited
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, IndexError, ValueError):
        return None


def cpu_total(pids: list[int], *, precise: bool = False) -> float | None:
    """CPU seconds of all ``pids`` together (None where unknown); ``precise``: of their live
    threads, to the nanosecond (:func:`thread_cpu_seconds`)."""
    seconds = [(thread_cpu_seconds if precise else cpu_seconds)(p) for p in pids]
    return None if None in seconds else sum(seconds)  # type: ignore[arg-type]
