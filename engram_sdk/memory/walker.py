"""Walk a folder the way ripgrep does: .gitignore at every level, .engramignore, no .git,
no huge files, no symlinks, no devices or FIFOs, no names that are not valid UTF-8.

The walk only stats; reading (and recognising binaries) happens in
:mod:`engram_sdk.memory.safe_read`, which checks that each file is still the one walked.
Ignore rules are matched in linear time (:mod:`engram_sdk.memory.ignore`); an invalid
pattern is skipped with a warning naming its file and line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engram_sdk.memory.ignore import IgnoreFile, load_rules
from engram_sdk.memory.safe_read import Identity, SkipFile, read_limited

ALWAYS_SKIP = {".git", ".hg", ".svn", "__pycache__", ".engram"}
IGNORE_FILES = (".gitignore", ".ignore", ".engramignore")
MAX_IGNORE_FILE_BYTES = 1 << 20


@dataclass
class WalkReport:
    """What the walk skipped, and why; ``warnings`` are sentences for the user."""

    files: int = 0
    bytes: int = 0
    ignored: int = 0
    binary: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)
    outside_links: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    undecodable_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WalkedFile:
    """A file to ingest: its absolute path as text (the name its passages are stored under),
    its path relative to the root, and its stat."""

    source: str
    rel: str
    size: int
    mtime_ns: int
    identity: Identity | None = None

    @property
    def path(self) -> Path:
        """:attr:`source` as a :class:`Path` (made on demand: the walk makes none)."""
        return Path(self.source)


def printable_path(path: str | os.PathLike[str]) -> str:
    """A path as text, undecodable bytes shown as ``\\xNN`` (for messages only)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _prefix(folder: Path) -> str:
    text = str(folder)
    return text if text.endswith("/") else text + "/"


def _below(path: str, prefix: str, folder: Path) -> str:
    """``path`` relative to ``folder`` (whose text ends in ``prefix``), POSIX-style."""
    if path.startswith(prefix):
        return path[len(prefix) :]
    return Path(path).relative_to(folder).as_posix()


def _load_ignore(folder: Path, names: set[str], warnings: list[str]) -> IgnoreFile | None:
    """The rules of the ignore files among ``names`` (the folder's entries)."""
    texts = []
    for name in IGNORE_FILES:
        if name not in names:
            continue
        f = folder / name
        try:  # the same safe read as any file: no links, FIFOs or huge files
            data = read_limited(f, MAX_IGNORE_FILE_BYTES, None)
        except SkipFile as skip:
            warnings.append(f"{printable_path(f)}: not read ({skip}); its rules are not applied")
            continue
        texts.append((printable_path(f), data.decode("utf-8", errors="replace")))
    rules = load_rules(texts, warnings)
    return IgnoreFile(folder, rules) if rules else None


def walk(
    root: Path, max_bytes: int = 4 << 20, report: WalkReport | None = None
) -> Iterator[WalkedFile]:
    """Yield ingestible files under ``root`` in a stable order."""
    root = root.resolve()
    root_prefix = _prefix(root)
    report = report if report is not None else WalkReport()
    stack: list[tuple[IgnoreFile, str]] = []

    def ignored(path: str, is_dir: bool) -> bool:
        for rules, prefix in reversed(stack):  # the deepest ignore file that has a say decides
            decision = rules.decide(_below(path, prefix, rules.folder), is_dir)
            if decision is not None:
                return decision
        return False

    def visit(folder: Path) -> Iterator[WalkedFile]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            report.unreadable.append(printable_path(folder))
            entries = []
        rules = _load_ignore(folder, {e.name for e in entries}, report.warnings)
        if rules is not None:
            stack.append((rules, _prefix(folder)))
        for entry in entries:
            yield from _entry(entry)
        if rules is not None:
            stack.pop()

    def _entry(entry: os.DirEntry[str]) -> Iterator[WalkedFile]:
        path = entry.path  # a str: the walk makes no pathlib objects for files
        if entry.name in ALWAYS_SKIP:
            return
        if not _valid_utf8(entry.name):
            shown = printable_path(path)
            report.undecodable_names.append(shown)
            report.warnings.append(f"{shown}: name is not valid UTF-8; skipped")
            return
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            report.unreadable.append(path)
            return
        if stat.S_ISLNK(st.st_mode):
            try:
                target = Path(path).resolve()
            except (OSError, RuntimeError):
                target = None
            if target is None or (root != target and root not in target.parents):
                report.outside_links.append(path)
            return  # links inside the root: their targets are visited under their own names
        if stat.S_ISDIR(st.st_mode):
            if ignored(path, True):
                report.ignored += 1
            else:
                yield from visit(Path(path))
            return
        if not stat.S_ISREG(st.st_mode):
            report.special.append(path)
            return
        if ignored(path, False):
            report.ignored += 1
            return
        rel = _below(path, root_prefix, root)
        if st.st_size > max_bytes:
            report.too_large.append(rel)
            return
        report.files += 1
        report.bytes += st.st_size
        identity = Identity(st.st_dev, st.st_ino)
        yield WalkedFile(path, rel, st.st_size, st.st_mtime_ns, identity)

    yield from visit(root)
