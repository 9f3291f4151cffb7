"""``engram search`` from scripts: the first call starts a warm searcher, later calls ask it.

    python examples/memory_warm_search.py [FOLDER]

Ingests FOLDER (default: this examples folder) into a scratch memory, then runs a piped
``engram search`` three times and prints each call's wall time beside ``rg``'s on the same
folder: the first call starts the memory's searcher in the background and asks it once it
listens; the next ones are answered by it at once (the client imports only the standard
library). It ends with ``--daemon-status`` and ``--daemon-stop``. See
docs/memory/ingest_cli.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engram_sdk.memory import Memory


def engram(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ENGRAM_NO_DAEMON"}
    argv = [sys.executable, "-m", "engram_sdk.cli.main", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return time.perf_counter() - start, out


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent).resolve()
    with tempfile.TemporaryDirectory(prefix="engram-warm-") as tmp:
        uri = f"lmdb://{tmp}/memory"
        with Memory.open(uri) as mem:
            report = mem.ingest(folder, progress=False)
        print(f"ingested {report.files_indexed} files of {folder}")
        query = "import"
        for call in range(3):
            start = time.perf_counter()
            out = engram("search", query, "-k", "3", "--store", uri).stdout
            ours = time.perf_counter() - start
            line = f"call {call + 1}: engram search {ours * 1e3:.0f} ms"
            if shutil.which("rg"):
                rg, _ = timed(["rg", "-F", "-i", "-n", "-m", "3", "--", query, str(folder)])
                line += f", rg {rg * 1e3:.0f} ms"
            print(line + f"; first hit: {out.splitlines()[0] if out else '(none)'}")
            time.sleep(1.0)  # the first call's searcher opens the memory meanwhile
        print(engram("search", "--daemon-status", "--store", uri).stdout.strip())
        print(engram("search", "--daemon-stop", "--store", uri).stdout.strip())


if __name__ == "__main__":
    main()
