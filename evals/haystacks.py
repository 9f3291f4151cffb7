"""Haystacks: endless, deterministic streams of text units a task fills its context with.

* ``noise``: RULER's repeated noise sentences, one per line.
* ``essay``: essay-style prose from a built-in deterministic generator (wonderwords
  vocabulary, fixed sentence frames), sentences joined by spaces; stands in for RULER's
  Paul Graham essays, which are not shipped offline.
* a folder of the user's own files: their lines in path order (a codebase makes a
  "needle in a codebase" test), skipping hidden entries, binaries and huge files.

Every haystack is a :class:`Haystack`: ``units(seed)`` yields text units forever and
``joiner`` glues them; the length fitter pulls as many units as the target length needs.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from engram_sdk.evals import words

from engram_sdk.errors import InputError

NOISE_SENTENCE = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
)

SLOTS = ("a", "a2", "n", "n2", "n3", "v")  # an essay frame's word slots, in draw order
FRAMES = (
    "The {a} {n} will {v} the {n2} long before the {a2} {n3} does.",
    "Most people who {v} a {n} never notice how {a} it really is.",
    "If you want to {v} the {n}, start with something {a} and small.",
    "It is {a} to {v} a {n} when the {n2} around it is {a2}.",
    "Every {n} can {v} another {n2}, but few of them stay {a}.",
    "We used to think the {n} was {a}, and then we learned to {v} it.",
    "That is why a {a} {n} tends to {v} the {n2} it depends on.",
    "Nobody asked whether the {n} should {v} the {a} {n2}.",
    "A {a} {n} is easier to {v} than a {a2} one.",
    "What matters is not the {n} itself but how you {v} the {n2}.",
    "So the {a} {n} kept trying to {v} the {n2}, and eventually it worked.",
    "In practice the {n} and the {n2} rarely {v} each other.",
)
# each frame as a %-pattern and the SLOTS it fills, in order (% is 3x faster than format)
_PATTERNS = tuple(
    (re.sub(r"\{(\w+)\}", "%s", frame), [SLOTS.index(k) for k in re.findall(r"\{(\w+)\}", frame)])
    for frame in FRAMES
)
MAX_FILE_BYTES = 2_000_000
KEPT_STREAMS = 8  # unit streams remembered per process (a 1M-token essay is ~65K units)
_STREAMS: OrderedDict[Hashable, tuple[list, Iterator]] = OrderedDict()


def replay(key: Hashable, make: Callable[[], Iterator], batch: int = 4096) -> Iterator:
    """The items of ``make()``, generated once per ``key`` in this process (``batch`` items at
    a time, as callers reach them) and replayed to every later caller (the last
    :data:`KEPT_STREAMS` keys are kept)."""
    entry = _STREAMS.get(key)
    if entry is None:
        entry = _STREAMS[key] = ([], make())
        while len(_STREAMS) > KEPT_STREAMS:
            _STREAMS.popitem(last=False)
    _STREAMS.move_to_end(key)
    return _replayed(*entry, batch)


def _replayed(made: list, source: Iterator, batch: int) -> Iterator:
    i = 0
    while True:
        if i == len(made):
            made.extend(itertools.islice(source, batch))
            if i == len(made):
                return
        end = len(made)
        yield from itertools.islice(made, i, end)
        i = end


MAX_LINE_CHARS = 400


@dataclass(frozen=True)
class Haystack:
    """A named, deterministic stream of text units and the string that joins them.

    ``varies_with_seed`` says whether ``units(seed)`` differs between seeds (the noise
    haystack is the same sentence at every seed, so repeats over it measure nothing new).
    """

    name: str
    joiner: str
    varies_with_seed: bool = True

    def units(self, seed: int) -> Iterator[str]:
        """Units of text, forever (cycling where the source is finite)."""
        raise NotImplementedError


@dataclass(frozen=True)
class NoiseHaystack(Haystack):
    """RULER's noise haystack: the same five sentences on every line."""

    name: str = "noise"
    joiner: str = "\n"
    varies_with_seed: bool = False

    def units(self, seed: int) -> Iterator[str]:
        while True:
            yield NOISE_SENTENCE


@dataclass(frozen=True)
class EssayHaystack(Haystack):
    """Deterministic essay-style prose: the same ``corpus_seed`` and ``seed`` always give the
    same text, another seed other text (so repeated grid cells are different haystacks).

    Word choices are drawn in blocks with numpy (``vectorized=True``, the default); the
    one-draw-at-a-time ``random`` stream of earlier versions stays available for comparison.
    """

    name: str = "essay"
    joiner: str = " "
    corpus_seed: int = 0
    vectorized: bool = True

    def units(self, seed: int) -> Iterator[str]:
        if not self.vectorized:
            return self._python_units(seed)
        return (unit for texts, _ in self.blocks(seed) for unit in texts)

    def blocks(self, seed: int) -> Iterator[tuple[list[str], np.ndarray]]:
        """The units of ``units(seed)`` in blocks, each with the draws it was made from: an
        array of shape ``(7, len(block))`` holding, per unit, the frame and the indices of
        :data:`SLOTS`' words (:mod:`engram_sdk.evals.essay_counts` counts tokens from them)."""
        return replay(("essay", self.corpus_seed, seed), lambda: self._numpy_blocks(seed), 1)

    def _python_units(self, seed: int) -> Iterator[str]:
        rng = random.Random(f"essay-{self.corpus_seed}-{seed}")
        ns, adjs, vs = words.nouns(), words.adjectives(), words.verbs()
        while True:
            frame = FRAMES[rng.randrange(len(FRAMES))]
            yield frame.format(
                a=adjs[rng.randrange(len(adjs))],
                a2=adjs[rng.randrange(len(adjs))],
                n=ns[rng.randrange(len(ns))],
                n2=ns[rng.randrange(len(ns))],
                n3=ns[rng.randrange(len(ns))],
                v=vs[rng.randrange(len(vs))],
            )

    def _numpy_blocks(self, seed: int, block: int = 4096) -> Iterator[tuple[list[str], np.ndarray]]:
        digest = hashlib.sha256(f"essay-{self.corpus_seed}-{seed}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        ns, adjs, vs = words.nouns(), words.adjectives(), words.verbs()
        sizes = (len(FRAMES), len(adjs), len(adjs), len(ns), len(ns), len(ns), len(vs))
        lists = [np.asarray(ws, dtype=object) for ws in (adjs, adjs, ns, ns, ns, vs)]
        while True:
            draws = np.stack([rng.integers(0, k, size=block) for k in sizes])
            texts = np.empty(block, dtype=object)
            for f, (pattern, slots) in enumerate(_PATTERNS):  # one frame's units at a time
                where = np.flatnonzero(draws[0] == f)
                columns = [lists[k][draws[k + 1][where]].tolist() for k in slots]
                texts[where] = [pattern % fill for fill in zip(*columns, strict=True)]
            yield texts.tolist(), draws


def _is_text(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(8192)
        head.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return b"\x00" not in head


def list_text_files(folder: Path) -> list[Path]:
    """Text files under ``folder`` in sorted path order, skipping hidden entries,
    symlinks, binaries and files over 2 MB."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules")
        )
        for name in sorted(files):
            p = Path(root) / name
            if name.startswith(".") or p.is_symlink():
                continue
            try:
                if p.stat().st_size > MAX_FILE_BYTES:
                    continue
            except OSError:
                continue
            if _is_text(p):
                found.append(p)
    return found


@dataclass(frozen=True)
class FolderHaystack(Haystack):
    """The lines of every text file under ``folder``, file by file, cycling at the end; the
    seed picks the line the stream starts at (seed 0: the first line of the first file)."""

    name: str = "folder"
    joiner: str = "\n"
    folder: str = ""

    def __post_init__(self) -> None:
        p = Path(self.folder)
        if not p.is_dir():
            raise InputError(f"haystack folder {self.folder!r} is not a directory")

    def units(self, seed: int) -> Iterator[str]:
        files = list_text_files(Path(self.folder))
        lines: list[str] = []
        for p in files:
            text = p.read_text("utf-8", errors="replace")
            lines.append(f"# file: {p.relative_to(self.folder)}")
            for line in text.splitlines():
                line = line.rstrip()
                while len(line) > MAX_LINE_CHARS:
                    lines.append(line[:MAX_LINE_CHARS])
                    line = line[MAX_LINE_CHARS:]
                if line:
                    lines.append(line)
        if not lines:
            raise InputError(f"haystack folder {self.folder!r} holds no readable text files")
        start = random.Random(f"folder-{seed}").randrange(len(lines)) if seed else 0
        yield from lines[start:]
        while True:
            yield from lines


def get_haystack(kind: str) -> Haystack:
    """``noise``, ``essay`` or a path to a folder of files."""
    if kind == "noise":
        return NoiseHaystack()
    if kind == "essay":
        return EssayHaystack()
    if os.path.isdir(kind):
        return FolderHaystack(folder=str(Path(kind).resolve()))
    raise InputError(f"haystack {kind!r}: expected 'noise', 'essay' or an existing folder")
