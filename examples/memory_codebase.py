"""Ingest a codebase, search it, build a context for a question, and remember a conversation.

    python examples/memory_codebase.py [FOLDER]

Uses a throw-away dram:// memory; pass --store lmdb:///path to the CLI for a persistent one.
"""

import sys
from pathlib import Path

import engram_sdk
from engram_sdk.memory import Memory
from engram_sdk.sessions import Session


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(engram_sdk.__file__).parent
    with Memory.open("dram://") as mem:
        report = mem.ingest(root, progress=False)
        print(
            f"ingested {report.files_indexed} files, {report.passages} passages "
            f"({report.mb_per_s:.1f} MB/s)"
        )
        for hit in mem.search("def open_store", k=3):
            print(f"  {hit.score:6.1f}  {hit.source}:{hit.line_start}  {hit.snippet}")
        ctx = mem.context("how is the writer lock taken", max_tokens=300)
        print(f"context: {ctx.tokens} tokens from {len(ctx.passages)} passages")

        monday = Session(mem, "monday", scope="alice")
        monday.append("user", "My build server is called hydra-7 and runs the nightly tests.")
        tuesday = Session(mem, "tuesday", scope="alice")
        print("recalled in a new session:", tuesday.context_for("what is my build server called?"))


if __name__ == "__main__":
    main()
