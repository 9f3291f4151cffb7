"""Corpus and queries for ``engram bench memory``.

The corpus is real Python source found offline: installed site-packages trees (torch,
transformers, numpy, ...), then the standard library, copied into a scratch folder until the
target size, or any folder given on the command line. Queries are sampled with a fixed seed
from the corpus itself, one list per class, so every system answers the same ones.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engram_sdk.tokenizer import get_tokenizer

PREFERRED = ("torch", "transformers", "numpy", "scipy", "sympy", "pandas", "sklearn")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,40}")
WORD = re.compile(r"\b[A-Za-z_]\w{3,}\b")


@dataclass
class QuerySet:
    """Queries per class; ``regex`` holds patterns."""

    classes: dict[str, list[str]] = field(default_factory=dict)


def discover_roots() -> list[Path]:
    """Folders of real Python source on this machine: big libraries first (found without
    importing them), then every site-packages folder and the standard library."""
    roots = []
    for name in PREFERRED:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            roots.append(Path(spec.origin).parent)
    site = [Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    return [*roots, *site, Path(sysconfig.get_paths()["stdlib"])]


def copy_corpus(dst: Path, target_bytes: int, roots: list[Path] | None = None) -> tuple[int, int]:
    """Copy ``.py`` files from ``roots`` into ``dst`` until ``target_bytes``; (files, bytes)."""
    files = total = 0
    seen: set[Path] = set()
    for n, root in enumerate(roots or discover_roots()):
        for src in sorted(root.rglob("*.py")):
            if total >= target_bytes:
                return files, total
            real = src.resolve()
            if real in seen or not src.is_file():
                continue
            seen.add(real)
            out = dst / f"{n}-{root.name}" / src.relative_to(root)
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out)
            except OSError:
                continue
            files += 1
            total += out.stat().st_size
    return files, total


def corpus_files(corpus: Path) -> list[Path]:
    """Every regular file of the corpus, sorted."""
    return sorted(p for p in corpus.rglob("*") if p.is_file())


def pick_queries(corpus: Path, per_class: int, seed: int) -> QuerySet:
    """Identifiers of 1, 2 and 3+ cl100k tokens, phrases, regexes and list-all identifiers."""
    rng = np.random.default_rng(seed)
    tok = get_tokenizer("cl100k_base")
    files = corpus_files(corpus)
    want = {"ident-1tok": [], "ident-2tok": [], "ident-3+tok": [], "phrase": []}
    file_df: Counter[str] = Counter()
    tries = 0
    while any(len(v) < per_class for v in want.values()) and tries < 200_000:
        tries += 1
        path = files[int(rng.integers(0, len(files)))]
        text = path.read_text(errors="replace")
        if tries <= 400:
            file_df.update(set(WORD.findall(text)))
        lines = [ln for ln in text.splitlines() if ln.strip() and ln.isascii()]
        if not lines:
            continue
        line = lines[int(rng.integers(0, len(lines)))]
        idents = IDENT.findall(line)
        if idents:
            ident = idents[int(rng.integers(0, len(idents)))]
            n = len(tok.encode(ident))
            kind = "ident-1tok" if n == 1 else "ident-2tok" if n == 2 else "ident-3+tok"
            if len(want[kind]) < per_class and ident not in want[kind]:
                want[kind].append(ident)
        words = line.split()
        if len(words) >= 3 and len(want["phrase"]) < per_class:
            start = int(rng.integers(0, len(words) - 2))
            want["phrase"].append(" ".join(words[start : start + 2 + int(rng.integers(1, 3))]))
    common = [w for w, _ in file_df.most_common(per_class)]
    regexes = _regexes(want["ident-3+tok"], per_class)
    return QuerySet({**want, "regex": regexes, "list-all": common[: max(3, per_class // 3)]})


def _regexes(idents: list[str], n: int) -> list[str]:
    """Patterns of the kinds people grep code with, built around sampled identifiers."""
    fixed = [
        r"def \w+_grad\(",
        r"raise \w+Error\(",
        r"import (numpy|torch) as",
        r"\bself\.\w+_cache\b",
    ]
    built = [rf"\b{re.escape(i)}\s*\(" for i in idents] + [
        rf"{re.escape(i[: len(i) // 2])}\w*{re.escape(i[-2:])}" for i in idents
    ]
    return (fixed + built)[:n]
