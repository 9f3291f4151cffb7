"""Exact search over a codebase: every match of an identifier, regexes, filters.

    python examples/memory_search.py [FOLDER]

Uses a throw-away dram:// memory over FOLDER (default: the engram_sdk package itself).
"""

import sys
from pathlib import Path

import engram_sdk
from engram_sdk.memory import Memory


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(engram_sdk.__file__).parent
    with Memory.open("dram://") as mem:
        mem.ingest(root, progress=False)
        every = mem.search("InputError", k="all")  # every passage, case-folded
        print(f"'InputError' is in {len({h.source for h in every})} files, {len(every)} passages")
        files = mem.search("InputError", k="all", one_per_source=True)  # like rg -l: one per file
        print(f"  listed file by file: {len(files)} files, e.g. {files[0].source}")
        for hit in mem.search(" open_store(", k=3, exact_case=True):  # any substring
            print(f"  {hit.source}:{hit.line_start}: {hit.snippet}")
        calls = mem.search(r"raise \w+Error\(f?\"", k="all", regex=True, path_glob="*/memory/*")
        print(f"raise sites under memory/: {len(calls)}")
        mem.add("Deploys happen on Tuesdays.", source="ops.md", metadata={"team": "infra"})
        (hit,) = mem.search("deploys happen", metadata={"team": "infra"})
        print(f"  {hit.source}: {hit.snippet} {hit.metadata}")


if __name__ == "__main__":
    main()
