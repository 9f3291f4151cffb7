"""Keep a memory tidy: ingest a folder incrementally, list sources, forget by source,
metadata, age and TTL, then give the space back.

    python examples/memory_forget.py

Works in a temporary folder with an lmdb:// memory; prints what each step did.
"""

import tempfile
import time
from pathlib import Path

from engram_sdk.memory import Memory
from engram_sdk.sessions import Session


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        (docs / ".gitignore").write_text("*.log\n[z-a]\n")  # line 2 is invalid: a warning
        (docs / "deploy.md").write_text("Deploys happen on Tuesdays.\n")
        (docs / "legacy.txt").write_bytes("Une idée naïve\n".encode("latin-1"))
        (docs / "debug.log").write_text("ignored\n")
        uri = f"lmdb://{Path(tmp) / 'mem'}"
        with Memory.open(uri) as mem:
            report = mem.ingest(docs, progress=False)
            print(f"indexed {report.files_indexed} files; decoded as: {report.decoded_as}")
            print(f"warnings: {report.warnings}")
            again = mem.ingest(docs, progress=False)
            # files written under 2 s before they were read are re-read once (racy-git guard)
            print(f"re-ingest: {again.files_unchanged} unchanged, {again.files_hashed} re-read")

            mem.add("Standup is at 10:30.", source="notes", metadata={"team": "a"})
            mem.add("The printer code is 4242.", source="notes", ttl=0.1)
            chat = Session(mem, "monday", scope="default")
            chat.append("user", "My build server is called hydra-7.")
            for info in mem.sources():
                print(f"  {info.source}: {info.passages} passages")

            time.sleep(0.2)
            print(f"expired: {mem.forget(expired=True)} passage(s)")
            print(f"forget team a: {mem.forget(metadata={'team': 'a'})} passage(s)")
            print(f"forget the session's turns: {mem.forget(metadata={'session': 'monday'})}")
            print(f"found 'naïve': {bool(mem.search('naïve', exact_case=True))}")
            mem.compact()
            space = mem.vacuum()  # closes the memory
        print(f"store file: {space.bytes_before:,} -> {space.bytes_after:,} bytes")


if __name__ == "__main__":
    main()
