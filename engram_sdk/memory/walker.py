"""Walk a folder the way ripgrep does: .gitignore at every level, .engramignore, no .git,
no binaries, no huge files, no symlinks out of the root, no devices or FIFOs."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

ALWAYS_SKIP = {".git", ".hg", ".svn", "__pycache__", ".engram"}
IGNORE_FILES = (".gitignore", ".ignore", ".engramignore")


@dataclass
class WalkReport:
    """What the walk skipped, and why."""

    files: int = 0
    bytes: int = 0
    ignored: int = 0
    binary: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)
    outside_links: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WalkedFile:
    """A file to ingest: its path, its path relative to the root, and its stat."""

    path: Path
    rel: str
    size: int
    mtime_ns: int


def _load_spec(folder: Path) -> pathspec.PathSpec | None:
    patterns: list[str] = []
    for name in IGNORE_FILES:
        f = folder / name
        if f.is_file():
            try:
                patterns += f.read_text(errors="replace").splitlines()
            except OSError:
                continue
    if not patterns:
        return None
    try:
        return pathspec.PathSpec.from_lines("gitignore", patterns)
    except (KeyError, LookupError):  # pathspec < 0.12 names it gitwildmatch
        return pathspec.PathSpec.from_lines("gitwildmatch", patterns)


def is_binary(path: Path) -> bool:
    """ripgrep's rule: a NUL byte in the first 8 KiB."""
    with open(path, "rb") as fh:
        return b"\x00" in fh.read(8192)


def walk(
    root: Path, max_bytes: int = 4 << 20, report: WalkReport | None = None
) -> Iterator[WalkedFile]:
    """Yield ingestible files under ``root`` in a stable order."""
    root = root.resolve()
    report = report if report is not None else WalkReport()
    specs: list[tuple[Path, pathspec.PathSpec]] = []

    def ignored(path: Path, is_dir: bool) -> bool:
        for base, spec in specs:
            rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
            if spec.match_file(rel):
                return True
        return False

    def visit(folder: Path, depth: int) -> Iterator[WalkedFile]:
        spec = _load_spec(folder)
        if spec is not None:
            specs.append((folder, spec))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            report.unreadable.append(str(folder))
            entries = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name in ALWAYS_SKIP:
                continue
            try:
                st = os.stat(path) if entry.is_symlink() else entry.stat(follow_symlinks=False)
            except OSError:
                report.unreadable.append(str(path))
                continue
            if entry.is_symlink():
                target = path.resolve()
                if root != target and root not in target.parents:
                    report.outside_links.append(str(path))
                    continue
                if stat.S_ISDIR(st.st_mode):
                    continue  # links to folders inside the root: their files are visited anyway
            if stat.S_ISDIR(st.st_mode):
                if not ignored(path, True):
                    yield from visit(path, depth + 1)
                else:
                    report.ignored += 1
                continue
            if not stat.S_ISREG(st.st_mode):
                report.special.append(str(path))
                continue
            if ignored(path, False):
                report.ignored += 1
                continue
            rel = path.relative_to(root).as_posix()
            if st.st_size > max_bytes:
                report.too_large.append(rel)
                continue
            try:
                if is_binary(path):
                    report.binary.append(rel)
                    continue
            except OSError:
                report.unreadable.append(rel)
                continue
            report.files += 1
            report.bytes += st.st_size
            yield WalkedFile(path, rel, st.st_size, st.st_mtime_ns)
        if spec is not None:
            specs.pop()

    yield from visit(root, 0)
