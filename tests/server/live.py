"""Start ``engram serve`` as a real subprocess on a free loopback port, polled on /health."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Live:
    """A running server: its base URL and where its log goes."""

    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def v1(self) -> str:
        """The OpenAI base URL."""
        return self.url + "/v1"

    def log_text(self) -> str:
        """Everything the server printed so far."""
        return self.log.read_text(errors="replace")


@contextmanager
def serve(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Live]:
    """``engram serve ARGS --port FREE``; stopped (SIGTERM, then kill) at the end."""
    port = free_port()
    cmd = [sys.executable, "-m", "engram_sdk.cli.main", "serve", "--port", str(port), *args]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    live = Live(f"http://127.0.0.1:{port}", log, proc)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"engram serve exited {proc.returncode}:\n{live.log_text()}")
            try:
                if httpx.get(live.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"engram serve did not come up:\n{live.log_text()}")
            time.sleep(0.2)
        yield live
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
