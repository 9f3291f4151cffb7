"""Format 2 → 3: move passage texts out of their records into fragments.

A format 2 memory keeps each passage's text, compressed, in its record after the JSON
header. Opened for writing, it is rewritten once, in one transaction (a crash leaves it at
format 2, still readable): per scope, runs of passages that share their metadata and time
become fragments (:mod:`engram_sdk.memory.text_store`) and each record keeps its header
only. Opened read-only, a format 2 memory is read as it is.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any

from engram_sdk.memory.models import MEMORY_FORMAT_VERSION
from engram_sdk.memory.text_store import write_texts

if TYPE_CHECKING:
    from engram_sdk.memory.memory import Memory

RUN = 4096  # passages converted per write


def migrate_to_fragments(mem: Memory) -> int:
    """Rewrite a format 2 memory as format 3; returns the passages moved."""
    from engram_sdk.memory.memory import PASSAGES

    moved = 0
    with mem.transaction():
        for sid in mem.manifest.scopes.values():
            run: list[tuple[int, bytes, dict[str, Any], bytes]] = []
            for key, raw in list(mem.store.scan(PASSAGES, sid.to_bytes(4, "big"))):
                head, _, body = raw.partition(b"\x00")
                if not body:  # already moved
                    continue
                meta = json.loads(head)
                text = zlib.decompress(body)
                if run and (len(run) >= RUN or not _same_batch(run[-1][2], meta)):
                    moved += _flush(mem, sid, run)
                run.append((int.from_bytes(key[4:8], "big"), head, meta, text))
            moved += _flush(mem, sid, run)
        mem.manifest.format_version = MEMORY_FORMAT_VERSION
        mem.store.put("mem.meta", b"manifest", mem.manifest.model_dump_json().encode())
    return moved


def _same_batch(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("metadata") == b.get("metadata") and a.get("created") == b.get("created")


def _flush(mem: Memory, sid: int, run: list[tuple[int, bytes, dict[str, Any], bytes]]) -> int:
    from engram_sdk.memory.memory import PASSAGES, passage_key

    if not run:
        return 0
    first = run[0][2]
    write_texts(
        mem.store,
        sid,
        [pid for pid, *_ in run],
        [text for *_, text in run],
        [[m["line_start"], m["line_end"], m["byte_start"], m["byte_end"]] for _, _, m, _ in run],
        [m["source"] for _, _, m, _ in run],
        {
            "scope": first["scope"],
            "metadata": first.get("metadata") or {},
            "created": first.get("created", 0.0),
        },
    )
    mem.store.put_many(PASSAGES, [(passage_key(sid, pid), head + b"\x00") for pid, head, *_ in run])
    count = len(run)
    run.clear()
    return count
