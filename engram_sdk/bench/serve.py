"""``engram bench serve``: what ``engram serve`` adds to time to first token, on loopback.

A stub upstream (its own process) streams a fixed reply at once, so the figures are the
server's own overhead. Three paths, same clients, same run:

- **upstream direct**: clients call the stub (the baseline);
- **proxy, memory off**: clients call ``engram serve --upstream stub`` with ``memory: false``;
- **proxy, memory on**: the same with recall from the memory: ``--memory-mb`` of generated
  text, the real folders given with ``--corpus``, or an existing memory (``--store``).

With ``--baseline-python`` (a Python whose ``engram_sdk`` is another checkout, e.g. a venv of
``main``) a second server runs that checkout on a copy of the same memory, and each proxy row
has its baseline row beside it, same clients, same questions, same run.

For 1, 8 and 32 concurrent clients it prints p50 / p99 time to first token, requests/s, the
p50 added over the upstream, and the CPU the stub and the servers spent per request (read
from ``/proc``: the servers' threads to the nanosecond, the stub in 10 ms clock ticks; robust
to a machine shared with other work, unlike wall times). Every row
asks questions no earlier row asked, so no server answers from a cache it warmed on a
previous row. Before the load it times, in-process and on other questions, ``Memory.search``
alone and the whole recall plan of a memory turn, so the table says how much of the memory
cost is the search.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from engram_sdk.bench.serve_parts import (
    cpu_total,
    fill_memory,
    free_port,
    ingest_corpus,
    run_stub,
    sample_questions,
    wait_up,
)


def recall_split(uri: str, questions: list[str], upstream: str) -> dict[str, float]:
    """CPU ms in this process, after :data:`WARM_UP` questions of its own (as each server),
    each other question asked once (as the bench's rows ask them), of the server's whole plan for a memory-on turn and, inside the same calls, of its
    ``Memory.search`` (``k`` from :func:`recall_k`, matched as :func:`recall_match` says) and
    of the rest (passages, focused lines, token counts): p50 and mean, since a server's CPU
    per request is a mean and the search's tail is long. On the other half of the questions,
    the same search asking for 20 hits (the plan before it sized ``k``)."""
    from engram_sdk.llm.augment import plan_turn
    from engram_sdk.llm.base import Message, SamplingOptions
    from engram_sdk.llm.openai_http import OpenAIBackend
    from engram_sdk.llm.recall import recall_k, recall_match, recall_query
    from engram_sdk.memory import Memory

    backend = OpenAIBackend(upstream, model="stub")
    k = recall_k(backend.context_length // 4)  # the plan's default budget
    times: dict[str, list[float]] = {"plan": [], "search": [], "rest": [], "search_k20": []}
    warm, questions = questions[:WARM_UP], questions[WARM_UP:]
    half = len(questions) // 2
    options = SamplingOptions(max_tokens=8)
    with Memory.open(uri, mode="r") as mem:
        for q in warm:
            messages: list[Message] = [{"role": "user", "content": f"What follows {q}?"}]
            plan_turn(
                backend,
                memory=mem,
                messages=messages,
                session=None,
                scope="default",
                options=options,
                memory_tokens=None,
            )
        search = mem.search

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return search(*args, **kwargs)
            finally:
                times["search"].append((time.thread_time() - t0) * 1e3)

        mem.search = timed  # type: ignore[method-assign]
        for q in questions[:half]:
            t0 = time.thread_time()
            plan_turn(
                backend,
                memory=mem,
                messages=[{"role": "user", "content": f"What follows {q}?"}],
                session=None,
                scope="default",
                options=options,
                memory_tokens=None,
            )
            times["plan"].append((time.thread_time() - t0) * 1e3)
            times["rest"].append(times["plan"][-1] - times["search"][-1])
        mem.search = search  # type: ignore[method-assign]
        for q in questions[half:]:
            text = f"What follows {q}?"
            t0 = time.thread_time()
            mem.search(recall_query(text), k=20, match=recall_match(text))
            times["search_k20"].append((time.thread_time() - t0) * 1e3)
    backend.close()
    out = {f"{name} p50": statistics.median(ms) for name, ms in times.items()}
    return out | {f"{name} mean": statistics.fmean(ms) for name, ms in times.items()} | {"k": k}


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


def _copy_store(uri: str, work: Path, name: str) -> str:
    """A copy of an ``lmdb://`` memory in ``work/name``: each server holds its memory's
    writer lock, and session turns are not written into a memory given with ``--store``."""
    if not uri.startswith("lmdb://"):
        raise typer.BadParameter(f"two servers or sessions need an lmdb:// memory, got {uri}")
    folder = Path(uri.removeprefix("lmdb://"))
    copy = work / name
    copy.mkdir()
    shutil.copy2(folder / "data.mdb", copy / "data.mdb")
    return f"lmdb://{copy}"


def _start_server(
    python: str, port: int, stub_url: str, uri: str, log: Path
) -> subprocess.Popen[bytes]:
    cmd = [python, "-m", "engram_sdk.cli.main", "serve", "--port", str(port)]
    cmd += ["--upstream", stub_url, "--store", uri, "--max-concurrent", "256"]
    with open(log, "wb") as out:
        # not the caller's folder: `python -m` puts it first on sys.path, so a baseline run
        # from a checkout's root would import that checkout instead of its own
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)


def _bodies(questions: list[str], case: Case, per_client: int = 1, tag: str = "") -> list[dict]:
    """Request bodies for ``case``; a session case gives each client (``per_client``
    consecutive bodies) a session of its own, named after ``tag``."""
    out = []
    for i, q in enumerate(questions):
        body: dict = {
            "model": "stub",
            "stream": True,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": f"What follows {q}?"}],
        }
        if case.memory is not None:
            body["memory"] = case.memory
        if case.session:
            body["session_id"] = f"bench-{tag}-{i // per_client}"
        out.append(body)
    return out


@dataclass
class Case:
    """One path the clients are timed on: ``memory`` None calls the upstream directly;
    ``session``: each client continues a session of its own (its turns stored)."""

    name: str
    url: str
    memory: bool | None
    session: bool = False


@dataclass
class Row:
    """One case at one client count."""

    clients: int
    case: str
    p50: float
    p99: float
    rps: float
    added: float
    stub_cpu: float | None
    cpu: float | None

    def markdown(self) -> str:
        stub, cpu = ("n/a" if c is None else f"{c:.2f}" for c in (self.stub_cpu, self.cpu))
        return (
            f"| {self.clients} | {self.case} | {self.p50:.1f} | {self.p99:.1f} | {self.rps:.0f} "
            f"| {self.added:+.1f} ms | {stub} | {cpu} |"
        )


#: questions each server answers before the first timed row (not asked again)
WARM_UP = 20
TABLE_HEAD = [
    "| clients | path | p50 TTFT ms | p99 TTFT ms | req/s | p50 added vs direct "
    "| CPU ms/request: stub | CPU ms/request: engram serve |",
    "|---|---|---|---|---|---|---|---|",
]


def run_cases(
    cases: list[Case],
    client_counts: list[int],
    requests: list[int],
    pids: list[int],
    stub_pid: int,
    questions: list[str],
) -> list[Row]:
    """Every case at every client count, the first case the baseline of the ``added``
    column. Each row asks questions no earlier row asked: the session rows other ones than the
    memory-on rows (on the same server, repeated questions would find its caches warm); a
    baseline row the same ones as this checkout's. CPU: of the servers (``pids``, their
    threads to the nanosecond) and of the stub (clock ticks)."""
    rows: list[Row] = []
    at = WARM_UP
    for case in cases[1:]:  # each server's caches and pages warm on questions of their own
        measure(case.url, _bodies(questions[:WARM_UP], case), 1, WARM_UP)
    for n, per_client in zip(client_counts, requests, strict=True):
        asked: dict[bool, list[str]] = {}
        for session in sorted({c.session for c in cases}):
            asked[session] = questions[at : at + n * per_client]
            at += n * per_client
        base = None
        for case in cases:
            before, stub_before = cpu_total(pids, precise=True), cpu_total([stub_pid])
            bodies = _bodies(asked[case.session], case, per_client, f"{n}")
            p50, p99, rps = measure(case.url, bodies, n, per_client)
            after, stub_after = cpu_total(pids, precise=True), cpu_total([stub_pid])
            cpu, stub = (
                None if a is None or b is None else (b - a) * 1e3 / len(bodies)
                for a, b in ((before, after), (stub_before, stub_after))
            )
            base = p50 if base is None else base
            rows.append(Row(n, case.name, p50, p99, rps, p50 - base, stub, cpu))
            typer.echo(rows[-1].markdown())
    return rows


def side_by_side(rows: list[Row], baseline: str) -> list[str]:
    """Per client count: p50 added and CPU per request, the baseline checkout beside this one."""
    out = [
        f"| clients | path | p50 added: {baseline} | p50 added: this "
        f"| engram serve CPU ms/req: {baseline} | engram serve CPU ms/req: this |",
        "|---|---|---|---|---|---|",
    ]
    by = {(r.clients, r.case): r for r in rows}
    for n in sorted({r.clients for r in rows}):
        for path in ("proxy, memory off", "proxy, memory on", "proxy, memory on, session"):
            this, base = by.get((n, path)), by.get((n, f"{path} [{baseline}]"))
            if this is None or base is None:
                continue
            cpu = ["n/a" if r.cpu is None else f"{r.cpu:.2f}" for r in (base, this)]
            out.append(
                f"| {n} | {path} | {base.added:+.1f} ms | {this.added:+.1f} ms | {cpu[0]} "
                f"| {cpu[1]} |"
            )
    return out


def _recall_line(ms: dict[str, float], n: int) -> str:
    def both(name: str) -> str:
        return f"{ms[name + ' p50']:.2f} / {ms[name + ' mean']:.2f} ms"

    return (
        f"recall in-process, CPU p50 / mean over {n // 2} questions asked once: the server's "
        f"whole plan {both('plan')}; inside it Memory.search {both('search')} (k={ms['k']:.0f}) "
        f"and the rest (passages, focused lines, token counts) {both('rest')}; the search "
        f"with k=20 on {n - n // 2} other questions {both('search_k20')}"
    )


def serve_bench(
    clients: Annotated[str, typer.Option(help="concurrent clients, comma-separated")] = "1,8,32",
    requests: Annotated[
        str,
        typer.Option(
            help="requests per client per case: one number, or one per client count "
            "(e.g. 60,20,10: at one client, more requests make the CPU column finer)"
        ),
    ] = "20",
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
    baseline_python: Annotated[
        str | None,
        typer.Option(
            help="a Python whose engram_sdk is the baseline checkout (e.g. a venv of main): "
            "its server's rows sit beside this one's"
        ),
    ] = None,
    baseline_name: Annotated[str, typer.Option(help="what the baseline rows are called")] = "main",
    sessions: Annotated[
        bool, typer.Option(help="also time memory on with a session per client (turns stored)")
    ] = False,
    markdown: Annotated[Path | None, typer.Option(help="also write the table here")] = None,
) -> None:
    """Time to first token and requests/s: upstream direct vs proxy (memory off / on)."""
    work = Path(tempfile.mkdtemp(prefix="engram-bench-serve-"))
    stub_port = free_port()
    stub = multiprocessing.get_context("spawn").Process(target=run_stub, args=(stub_port,))
    stub.start()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        uri, what = _memory(work, store, corpus or [], memory_mb)
        typer.echo(what, err=True)
        from engram_sdk.memory import Memory

        counts = [int(c) for c in clients.split(",")]
        per_client = [int(r) for r in requests.split(",")]
        per_client = per_client * len(counts) if len(per_client) == 1 else per_client
        if len(per_client) != len(counts):
            raise typer.BadParameter(f"--requests {requests}: one number or one per client count")
        timed = sum(n * r for n, r in zip(counts, per_client, strict=True))
        wanted = 2 * WARM_UP + timed * (2 if sessions else 1) + 64
        with Memory.open(uri, mode="r") as mem:
            questions = sample_questions(mem, wanted)
        stub_url = f"http://127.0.0.1:{stub_port}/v1"
        split_questions = questions[-(64 + WARM_UP) :]
        split = _recall_line(recall_split(uri, split_questions, stub_url), 64)
        typer.echo(split, err=True)
        wait_up(f"{stub_url}/models")
        sides = [(sys.executable, _copy_store(uri, work, "mem-this") if sessions else uri, "")]
        if baseline_python is not None:
            base_uri = _copy_store(uri, work, "mem-baseline")
            sides.insert(0, (baseline_python, base_uri, f" [{baseline_name}]"))
        cases = [Case("upstream direct", f"{stub_url}/chat/completions", None)]
        for python, side_uri, suffix in sides:
            port = free_port()
            log = work / f"serve{len(servers)}.log"
            servers.append(_start_server(python, port, stub_url, side_uri, log))
            wait_up(f"http://127.0.0.1:{port}/health", proc=servers[-1], log=log)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            cases += [Case(f"proxy, memory off{suffix}", url, False)]
            cases += [Case(f"proxy, memory on{suffix}", url, True)]
            if sessions:
                cases += [Case(f"proxy, memory on, session{suffix}", url, True, session=True)]
        cases = [cases[0], *sorted(cases[1:], key=lambda c: (c.memory, c.session, c.name))]
        assert stub.pid is not None
        rows = run_cases(cases, counts, per_client, [s.pid for s in servers], stub.pid, questions)
        table = "\n".join([*TABLE_HEAD, *(r.markdown() for r in rows)])
        if baseline_python is not None:
            table += "\n\n" + "\n".join(side_by_side(rows, baseline_name))
        typer.echo(f"\n{table}\n\n{split}")
        if markdown:
            markdown.write_text(
                f"# engram bench serve\n\n{what}; {requests} requests per client per case; "
                f"stub upstream on loopback\n\n{table}\n\n{split}\n"
            )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=20)
        stub.terminate()
        shutil.rmtree(work, ignore_errors=True)


def register(bench: typer.Typer) -> None:
    """Add ``engram bench serve``."""
    bench.command("serve")(serve_bench)
