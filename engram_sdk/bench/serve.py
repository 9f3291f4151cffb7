"""``engram bench serve``: what ``engram serve`` adds to time to first token, on loopback.

A stub upstream (its own process) streams a fixed reply at once, so the figures are the
server's own overhead. Three paths, same clients, same run:

- **upstream direct**: clients call the stub (the baseline);
- **proxy, memory off**: clients call ``engram serve --upstream stub`` with ``memory: false``;
- **proxy, memory on**: the same with recall from the memory: ``--memory-mb`` of generated
  text, the real folders given with ``--corpus``, or an existing memory (``--store``).

For 1, 8 and 32 concurrent clients it prints p50 / p99 time to first token, requests/s, the
p50 added over the baseline, and the CPU the stub and the server spent per request (read from
``/proc``; robust to a machine shared with other work, unlike wall times). Before the load
it times, in-process and on the same questions, ``Memory.search`` alone and the whole recall
plan of a memory turn, so the table says how much of the memory cost is the search.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

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


def _run_stub(port: int) -> None:
    _StubServer(("127.0.0.1", port), _Stub).serve_forever()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(
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


def recall_split(uri: str, questions: list[str], upstream: str) -> dict[str, float]:
    """p50 ms, in this process on the same questions, of ``Memory.search`` as the recall plan
    calls it (``k`` from :func:`recall_k`), of the same search asking for 20 hits (the plan
    before it sized ``k``), and of the server's whole plan for a memory-on turn (search,
    passages, focused lines, token counts)."""
    from engram_sdk.llm.augment import plan_turn
    from engram_sdk.llm.base import SamplingOptions
    from engram_sdk.llm.openai_http import OpenAIBackend
    from engram_sdk.llm.recall import recall_k, recall_query
    from engram_sdk.memory import Memory

    backend = OpenAIBackend(upstream, model="stub")
    k = recall_k(backend.context_length // 4)  # the plan's default budget
    times: dict[str, list[float]] = {"search": [], "search_k20": [], "plan": []}
    with Memory.open(uri, mode="r") as mem:
        for i, q in enumerate(questions):
            text = f"What follows {q}?"
            for asked in (k, 20) if i % 2 else (20, k):  # which one runs cold alternates
                t0 = time.perf_counter()
                mem.search(recall_query(text), k=asked)
                times["search" if asked == k else "search_k20"].append(
                    (time.perf_counter() - t0) * 1e3
                )
            t2 = time.perf_counter()
            plan_turn(
                backend,
                memory=mem,
                messages=[{"role": "user", "content": text}],
                session=None,
                scope="default",
                options=SamplingOptions(max_tokens=8),
                memory_tokens=None,
            )
            times["plan"].append((time.perf_counter() - t2) * 1e3)
    backend.close()
    return {name: statistics.median(ms) for name, ms in times.items()} | {"k": k}


FIRST_TEXT = re.compile(r'"content":\s*"[^"]')


async def _client(url: str, bodies: list[dict], ttfts: list[float], retried: list[int]) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=120) as client:
        for body in bodies:
            t0 = time.perf_counter()
            for attempt in range(2):
                try:
                    await _one(client, url, body, t0, ttfts)
                    break
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    # a kept-alive connection the server closed as this request went out
                    # (a POST is not retried by httpx); counted and printed
                    if attempt:
                        raise
                    retried.append(1)


async def _one(client: Any, url: str, body: dict, t0: float, ttfts: list[float]) -> None:
    first = True
    async with client.stream("POST", url, json=body) as resp:
        async for line in resp.aiter_lines():
            if first and line.startswith("data:") and FIRST_TEXT.search(line):
                ttfts.append(time.perf_counter() - t0)
                first = False


def measure(
    url: str, bodies: list[dict], clients: int, per_client: int
) -> tuple[float, float, float]:
    """p50 and p99 time to first token (ms) and requests/s for ``clients`` in parallel; every
    request asks another question while there are questions left (no two clients share one)."""
    ttfts: list[float] = []
    retried: list[int] = []

    def share(i: int) -> list[dict]:
        return [bodies[(i * per_client + j) % len(bodies)] for j in range(per_client)]

    async def main() -> None:
        await asyncio.gather(*(_client(url, share(i), ttfts, retried) for i in range(clients)))

    t0 = time.perf_counter()
    asyncio.run(main())
    wall = time.perf_counter() - t0
    if retried:
        typer.echo(f"({len(retried)} requests retried on a fresh connection)", err=True)
    ttfts.sort()
    p99 = ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))]
    return statistics.median(ttfts) * 1e3, p99 * 1e3, len(ttfts) / wall


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` so far (Linux ``/proc``; else None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_total(pids: list[int]) -> float | None:
    """CPU seconds of all ``pids`` together (None where unknown)."""
    seconds = [cpu_seconds(p) for p in pids]
    return None if None in seconds else sum(seconds)  # type: ignore[arg-type]


def _memory(work: Path, store: str | None, corpus: list[Path], megabytes: float) -> tuple[str, str]:
    """The memory's URI and a line saying what is in it (built unless ``store`` is given)."""
    if store is not None:
        return store, f"memory: {store} as found"
    uri = f"lmdb://{work / 'mem'}"
    t0 = time.perf_counter()
    if corpus:
        got = ingest_corpus(uri, corpus)
        what = f"{got:.1f} MB of real text from {', '.join(str(c) for c in corpus)}"
    else:
        fill_memory(uri, megabytes)
        what = f"{megabytes:g} MB of generated word text"
    return uri, f"memory: {what}, built in {time.perf_counter() - t0:.0f} s"


def _start_server(port: int, stub_url: str, uri: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "engram_sdk.cli.main", "serve", "--port", str(port)]
    cmd += ["--upstream", stub_url, "--store", uri, "--max-concurrent", "256"]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def _bodies(questions: list[str], memory: bool | None) -> list[dict]:
    out = []
    for q in questions:
        body: dict = {
            "model": "stub",
            "stream": True,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": f"What follows {q}?"}],
        }
        if memory is not None:
            body["memory"] = memory
        out.append(body)
    return out


def _table(
    cases: list[tuple[str, str, list[dict]]],
    client_counts: list[int],
    requests: int,
    pids: list[int],
    proxy: str,
    questions: list[str],
) -> list[str]:
    """The Markdown rows: every case at every client count, the first case the baseline."""
    rows = [
        "| clients | path | p50 TTFT ms | p99 TTFT ms | req/s | p50 added vs direct "
        "| CPU ms/request (stub + engram serve) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in client_counts:
        measure(proxy, _bodies(questions, True), 1, 2)  # warm-up
        base = None
        for name, url, bodies in cases:
            before = cpu_total(pids)
            p50, p99, rps = measure(url, bodies, n, requests)
            after = cpu_total(pids)
            cpu = (
                "n/a"
                if before is None or after is None
                else f"{(after - before) * 1e3 / (n * requests):.2f}"
            )
            base = p50 if base is None else base
            rows.append(
                f"| {n} | {name} | {p50:.1f} | {p99:.1f} | {rps:.0f} | {p50 - base:+.1f} ms "
                f"| {cpu} |"
            )
            typer.echo(rows[-1])
    return rows


def serve_bench(
    clients: Annotated[str, typer.Option(help="concurrent clients, comma-separated")] = "1,8,32",
    requests: Annotated[int, typer.Option(help="requests per client per case")] = 20,
    memory_mb: Annotated[
        float, typer.Option(help="generated text in memory for 'memory on' (without --corpus)")
    ] = 100.0,
    corpus: Annotated[
        list[Path] | None,
        typer.Option(help="ingest these real folders as the memory instead (repeatable)"),
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="use this existing memory as it is (no building)")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="also write the table here")] = None,
) -> None:
    """Time to first token and requests/s: upstream direct vs proxy (memory off / on)."""
    work = Path(tempfile.mkdtemp(prefix="engram-bench-serve-"))
    stub_port, port = _free_port(), _free_port()
    stub = multiprocessing.get_context("spawn").Process(target=_run_stub, args=(stub_port,))
    stub.start()
    server = None
    try:
        uri, what = _memory(work, store, corpus or [], memory_mb)
        typer.echo(what, err=True)
        from engram_sdk.memory import Memory

        counts = [int(c) for c in clients.split(",")]
        with Memory.open(uri, mode="r") as mem:
            questions = sample_questions(mem, max(64, max(counts) * requests))
        stub_url = f"http://127.0.0.1:{stub_port}/v1"
        ms = recall_split(uri, questions[:32], stub_url)
        split = (
            f"recall in-process, p50 over {min(32, len(questions))} questions: Memory.search "
            f"{ms['search']:.1f} ms as the plan calls it (k={ms['k']:.0f}; with k=20, as before "
            f"k was sized: {ms['search_k20']:.1f} ms); the server's whole plan (search, passages, "
            f"focused lines, token counts) {ms['plan']:.1f} ms, so {ms['plan'] - ms['search']:+.1f}"
            " ms beyond the search"
        )
        typer.echo(split, err=True)
        _wait_up(f"{stub_url}/models")
        server = _start_server(port, stub_url, uri, work / "serve.log")
        _wait_up(f"http://127.0.0.1:{port}/health", proc=server, log=work / "serve.log")
        proxy = f"http://127.0.0.1:{port}/v1/chat/completions"
        cases = [
            ("upstream direct", f"{stub_url}/chat/completions", _bodies(questions, None)),
            ("proxy, memory off", proxy, _bodies(questions, False)),
            ("proxy, memory on", proxy, _bodies(questions, True)),
        ]
        pids = [p for p in (stub.pid, server.pid) if p is not None]
        rows = _table(cases, counts, requests, pids, proxy, questions)
        table = "\n".join(rows)
        typer.echo(f"\n{table}\n\n{split}")
        if markdown:
            markdown.write_text(
                f"# engram bench serve\n\n{what}; {requests} requests per client per case; "
                f"stub upstream on loopback\n\n{table}\n\n{split}\n"
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        stub.terminate()
        shutil.rmtree(work, ignore_errors=True)


def register(bench: typer.Typer) -> None:
    """Add ``engram bench serve``."""
    bench.command("serve")(serve_bench)
