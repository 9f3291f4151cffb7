"""cProfile of ``engram serve`` in proxy mode under real uvicorn and the real ``openai`` client.

The server runs in this process (uvicorn on loopback, its event loop profiled on the main
thread, each recall thread profiled on its own and merged); the stub upstream of
``engram bench serve`` and the clients (``openai.AsyncOpenAI``, streaming) run in other
processes, so their work does not show. Prints the top functions by own time and by
cumulative time, and writes the merged profile for ``snakeviz``/``pstats``.

    python benchmarks/profile_serve.py --store lmdb:///tmp/mem100 --memory on \
        --clients 8 --requests 40 --out /tmp/serve.prof
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import multiprocessing
import pstats
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from engram_sdk.bench.serve_parts import free_port, run_stub, sample_questions, wait_up


def _clients(url: str, questions: list[str], clients: int, requests: int, memory: bool) -> None:
    import openai

    async def one(client: openai.AsyncOpenAI, i: int) -> None:
        for j in range(requests):
            q = questions[(i * requests + j) % len(questions)]
            stream = await client.chat.completions.create(
                model="stub",
                messages=[{"role": "user", "content": f"What follows {q}?"}],
                max_tokens=8,
                stream=True,
                extra_body={"memory": memory},
            )
            async for _ in stream:
                pass

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
        await asyncio.gather(*(one(client, i) for i in range(clients)))

    asyncio.run(main())


class _ProfiledPool(ThreadPoolExecutor):
    """A thread pool whose threads each run under their own profiler."""

    def __init__(self, workers: int) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()
        super().__init__(max_workers=workers, initializer=self._start)

    def _start(self) -> None:
        profile = cProfile.Profile()
        with self._lock:
            self.profiles.append(profile)
        profile.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="memory URI (built by engram bench serve)")
    ap.add_argument("--memory", choices=["on", "off"], default="on")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--out", default="serve.prof")
    args = ap.parse_args()

    import uvicorn

    from engram_sdk.memory import Memory
    from engram_sdk.server.app import create_app, open_backend
    from engram_sdk.server.config import ServeConfig
    from engram_sdk.server.fast_chat import ChatFastPath

    stub_port, port = free_port(), free_port()
    ctx = multiprocessing.get_context("spawn")
    stub = ctx.Process(target=run_stub, args=(stub_port,), daemon=True)
    stub.start()
    wait_up(f"http://127.0.0.1:{stub_port}/v1/models")
    config = ServeConfig(
        port=port, store=args.store, upstream=f"http://127.0.0.1:{stub_port}/v1", max_concurrent=256
    )
    memory = Memory.open(args.store)
    questions = sample_questions(memory, 64)
    backend = open_backend(config)
    app = create_app(config, backend=backend, memory=memory)
    pool = _ProfiledPool(4)
    app.state.engram.pool = pool
    server = uvicorn.Server(
        uvicorn.Config(
            ChatFastPath(app),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
        )
    )
    url = f"http://127.0.0.1:{port}/v1"
    load = ctx.Process(
        target=_clients,
        args=(url, questions, args.clients, args.requests, args.memory == "on"),
    )

    def drive() -> None:
        wait_up(f"http://127.0.0.1:{port}/health")
        _clients(url, questions, 1, 3, args.memory == "on")  # warm-up
        t0 = time.perf_counter()
        load.start()
        load.join()
        print(f"{args.clients * args.requests} requests in {time.perf_counter() - t0:.2f} s")
        server.should_exit = True

    threading.Thread(target=drive, daemon=True).start()
    main_profile = cProfile.Profile()
    main_profile.runcall(server.run)
    pool.shutdown(wait=True)
    stats = pstats.Stats(main_profile)
    for profile in pool.profiles:
        profile.disable()
        stats.add(profile)
    stats.dump_stats(args.out)
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(args.out, stream=out).sort_stats(key).print_stats(25)
        print(out.getvalue())
    stub.terminate()
    memory.close()


if __name__ == "__main__":
    main()
