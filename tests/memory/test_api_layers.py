"""Sessions build on memory, never the reverse; the memory layer never imports torch."""

import subprocess
import sys
import textwrap
from pathlib import Path


def test_memory_works_without_importing_sessions_or_torch(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def layered_marker():\n    return 1\n")
    script = textwrap.dedent(
        f"""
        import sys
        from engram_sdk.memory import Memory
        with Memory.open("lmdb://{tmp_path / "mem"}") as mem:
            mem.ingest({str(tmp_path)!r}, progress=False)
            mem.add("a note", source="n.md", ttl=60)
            assert mem.search("layered_marker")
            mem.context("layered_marker", max_tokens=50)
            mem.sources()
            mem.forget(sources="n.md")
        leaked = [m for m in sys.modules if m.startswith(("engram_sdk.sessions", "torch"))]
        print(leaked)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
