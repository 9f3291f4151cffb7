"""List and forget against a dict oracle: incremental ingest, add with metadata and TTL,
forget by source, metadata, age and expiry; vacuum gives the space back."""

import os
import random
import time
from pathlib import Path

import pytest

from engram_sdk.errors import InputError
from engram_sdk.memory import Memory
from engram_sdk.memory.forget import purge_expired
from engram_sdk.sessions import Session

TAGS = ["red", "green", "blue"]
SOURCES = [f"note{i}.md" for i in range(4)]


def _found(mem: Memory, marker: str) -> bool:
    return any(marker in h.snippet for h in mem.search(marker, k=5, exact_case=True))


def _check(mem: Memory, added: dict[str, tuple[str, str]], files: dict[str, str], root: Path):
    """Every marker ever made is found iff the oracle still holds it; sources agree."""
    for marker in list(added) + [f"filemark{i}x" for i in range(40)]:
        expected = marker in added or any(marker in t for t in files.values())
        assert _found(mem, marker) == expected, marker
    counts: dict[str, int] = {}
    for source, _tag in added.values():
        counts[source] = counts.get(source, 0) + 1
    for name in files:
        counts[str(root / name)] = 1
    listed = {s.source: s.passages for s in mem.sources("default")}
    assert listed == counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_adds_ingests_and_forgets_match_a_dict(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "docs"
    root.mkdir()
    added: dict[str, tuple[str, str]] = {}  # marker -> (source, tag)
    files: dict[str, str] = {}  # file name -> text
    expiring: dict[str, float] = {}  # marker -> expiry time
    counter = 0
    with Memory.open("dram://") as mem:
        for _ in range(30):
            op = rng.choice(["add", "add", "ttl", "file", "rmfile", "src", "meta", "expire"])
            counter += 1
            if op in ("add", "ttl"):
                marker, source, tag = f"addmark{counter}x", rng.choice(SOURCES), rng.choice(TAGS)
                ttl = 100.0 if op == "ttl" else None
                mem.add(f"the {marker} fact", source=source, metadata={"tag": tag}, ttl=ttl)
                added[marker] = (source, tag)
                if ttl:
                    expiring[marker] = time.time() + ttl
            elif op == "file":
                name = f"f{rng.randrange(5)}.txt"
                files[name] = f"file text filemark{rng.randrange(40)}x here\n"
                (root / name).write_text(files[name])
                os.utime(root / name, ns=(time.time_ns() - 10**12 + counter,) * 2)
                mem.ingest(root, progress=False)
            elif op == "rmfile" and files:
                name = rng.choice(sorted(files))
                (root / name).unlink()
                del files[name]
                mem.ingest(root, progress=False)
            elif op == "src":
                source = rng.choice(SOURCES)
                n = mem.forget(sources=source)
                assert n == sum(s == source for s, _ in added.values())
                added = {m: v for m, v in added.items() if v[0] != source}
            elif op == "meta":
                tag = rng.choice(TAGS)
                n = mem.forget(metadata={"tag": tag})
                assert n == sum(t == tag for _, t in added.values())
                added = {m: v for m, v in added.items() if v[1] != tag}
            elif op == "expire":
                purge_expired(mem, now=time.time() + 1000)
                added = {m: v for m, v in added.items() if m not in expiring}
                expiring.clear()
            _check(mem, added, files, root)


def test_forget_by_age_keeps_the_newer_passages() -> None:
    with Memory.open("dram://") as mem:
        mem.add("old fact oldmarker", source="a.md")
        time.sleep(0.05)
        boundary = time.time()
        time.sleep(0.05)
        mem.add("new fact newmarker", source="a.md")
        assert mem.forget(older_than=time.time() - boundary) == 1
        assert not _found(mem, "oldmarker") and _found(mem, "newmarker")
        assert [(s.source, s.passages) for s in mem.sources()] == [("a.md", 1)]


def test_a_ttl_runs_out_at_the_next_write() -> None:
    with Memory.open("dram://") as mem:
        mem.add("short lived ephemeralmarker", source="tmp.md", ttl=0.01)
        mem.add("durable durablemarker", source="keep.md")
        time.sleep(0.05)
        mem.add("a later write", source="other.md")  # purges what is due
        assert not _found(mem, "ephemeralmarker") and _found(mem, "durablemarker")
        s = Session(mem, "chat")
        s.append("user", "remember sessionmarker")
        assert mem.forget(metadata={"session": "chat"}) == 1 and not _found(mem, "sessionmarker")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"older_than": -1}, {"older_than": "1d"}, {"metadata": "x"}, {"sources": 5}],
)
def test_forget_arguments_are_checked(kwargs: dict) -> None:
    with Memory.open("dram://") as mem, pytest.raises(InputError):
        mem.forget(**kwargs)


def test_vacuum_gives_the_space_back(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        for i in range(200):
            mem.add(f"bulk text number {i} " + "padding words " * 400, source=f"bulk{i}.md")
        mem.add("survivor survivormarker", source="keep.md")
    with Memory.open(uri) as mem:
        mem.forget(sources=[f"bulk{i}.md" for i in range(200)])
        mem.compact()
        before = (tmp_path / "mem" / "data.mdb").stat().st_size
        report = mem.vacuum()
    after = (tmp_path / "mem" / "data.mdb").stat().st_size
    assert report.bytes_before == before and report.bytes_after == after < before / 2
    with Memory.open(uri, "r") as mem:
        assert _found(mem, "survivormarker")
        assert [s.source for s in mem.sources()] == ["keep.md"]
