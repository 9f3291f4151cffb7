"""A read-only Memory in another process follows a writer's re-ingest and compaction."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from engram_sdk.memory import Memory


def test_a_read_only_reader_finds_phrases_after_a_writer_reingests_and_compacts(
    tmp_path: Path,
) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "a.py").write_text("def zebra_unicorn():\n    return 1\n")
    (root / "b.py").write_text("other = 2\n")
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as writer:
        writer.ingest(root, progress=False)
    reader = Memory.open(uri, "r")
    try:
        assert [h.source for h in reader.search("zebra_unicorn")] == [str(root / "a.py")]
        writer_code = textwrap.dedent(
            f"""
            from pathlib import Path
            from engram_sdk.memory import Memory
            Path({str(root / "b.py")!r}).write_text("other = 3\\nzebra_unicorn()\\n")
            with Memory.open({uri!r}) as w:
                w.ingest({str(root)!r}, progress=False)
                w.compact()
            """
        )
        subprocess.run([sys.executable, "-c", writer_code], check=True)
        found = sorted(h.source for h in reader.search("zebra_unicorn"))
        assert found == [str(root / "a.py"), str(root / "b.py")]  # oracle: the files as written
    finally:
        reader.close()


def test_a_reader_with_cached_lists_follows_a_dropped_and_refilled_scope(tmp_path: Path) -> None:
    """A reader caches dictionaries and decoded lists per segment; another process deletes
    the scope and adds text of the same shape: the reader must see the new text only (oracle:
    the texts the writer added). Segment ids are not reused, so nothing cached is served."""
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as writer:
        writer.add("alpha_walrus lives here", source="a.txt", scope="s")
    reader = Memory.open(uri, "r")
    try:
        assert [h.source for h in reader.search("alpha_walrus", scope="s")] == ["a.txt"]
        writer_code = textwrap.dedent(
            f"""
            from engram_sdk.memory import Memory
            with Memory.open({uri!r}) as w:
                w.delete(scope="s")
                w.add("gamma_walrus lives here", source="b.txt", scope="s")
            """
        )
        subprocess.run([sys.executable, "-c", writer_code], check=True)
        assert reader.search("alpha_walrus", k="all", scope="s") == []
        assert [h.source for h in reader.search("gamma_walrus", k="all", scope="s")] == ["b.txt"]
        assert [h.source for h in reader.search("_walrus lives", k="all", scope="s")] == ["b.txt"]
    finally:
        reader.close()


def test_a_search_whose_segments_a_merge_removes_midway_starts_again(tmp_path: Path) -> None:
    """A reader reads the scope's segment list, then another process commits a merge that
    removes those segments, then the reader reads their pages. The search must start again
    from the new view and return every match (oracle: the texts the writers added), not
    raise a KeyError or silently read the missing pages as empty."""
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as writer:
        writer.add("pelican_quartz one", source="a.txt", scope="s")
        writer.add("pelican_quartz two", source="b.txt", scope="s")
    merge_code = textwrap.dedent(
        f"""
        from engram_sdk.memory import Memory
        with Memory.open({uri!r}) as w:
            w.add("pelican_quartz three " * 50, source="c.txt", scope="s")
            w.compact("s")
        """
    )
    reader = Memory.open(uri, "r")
    refresh = reader.index.refresh
    merged: list[int] = []

    def refresh_then_merge(sid: int) -> None:
        refresh(sid)
        if not merged:  # once: the view just read is stale before any page of it is read
            merged.append(sid)
            subprocess.run([sys.executable, "-c", merge_code], check=True)

    reader.index.refresh = refresh_then_merge  # type: ignore[method-assign]
    try:
        found = sorted(h.source for h in reader.search("pelican_quartz", k="all", scope="s"))
        assert merged, "the merge ran inside the search"
        assert found == ["a.txt", "b.txt", "c.txt"]
    finally:
        reader.close()
