"""Split files into passages on structural boundaries, keeping line and byte offsets."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate, compress

CODE_SUFFIXES = {
    ".py",
    ".pyi",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".hpp",
    ".cu",
    ".rs",
    ".go",
    ".java",
    ".kt",
    ".js",
    ".ts",
    ".tsx",
    ".jsx",
    ".rb",
    ".php",
    ".swift",
    ".scala",
    ".sh",
    ".bash",
    ".lua",
    ".pl",
    ".r",
    ".jl",
    ".zig",
    ".cs",
    ".m",
    ".sql",
    ".toml",
    ".yaml",
    ".yml",
    ".json",
    ".cfg",
    ".ini",
    ".mk",
}
_TOP_LEVEL = re.compile(
    r"^(def |class |async def |fn |pub |func |function |struct |enum |impl |interface |"
    r"export |const |static |int |void |template|#define|package |module |@)"
)


@dataclass(frozen=True)
class Chunk:
    """One passage: its text and where it sits in the file (lines 1-based inclusive)."""

    text: str
    line_start: int
    line_end: int
    byte_start: int
    byte_end: int


def _pieces(text: str, max_chars: int) -> list[tuple[str, int]]:
    """Lines with their 1-based numbers; a line longer than ``max_chars`` is cut at sentence
    ends (else at spaces) into pieces that keep its line number."""
    out: list[tuple[str, int]] = []
    for n, line in enumerate(text.splitlines(keepends=True), start=1):
        while len(line) > max_chars:
            cut = max(line.rfind(". ", 0, max_chars), line.rfind("\n", 0, max_chars))
            if cut < max_chars // 2:
                cut = line.rfind(" ", 0, max_chars)
            cut = cut + 1 if cut >= max_chars // 4 else max_chars
            out.append((line[:cut], n))
            line = line[cut:]
        out.append((line, n))
    return out


def _line_pieces(text: str, max_chars: int) -> list[str]:
    """The pieces of :func:`_pieces` without their numbers, when no line needs cutting (the
    usual case; line numbers are then 1, 2, ...); else an empty list."""
    lines = text.splitlines(keepends=True)
    if lines and max(map(len, lines)) > max_chars:
        return []
    return lines


def chunk_text(
    text: str, code: bool, max_lines: int = 60, max_chars: int | None = None
) -> list[Chunk]:
    """Code splits before top-level definitions and at blank lines once a passage is long
    enough; prose splits at blank lines (paragraphs). No passage exceeds ``max_lines`` lines
    or ``max_chars`` characters; a longer single line is cut at sentence ends.

    The pieces are scanned once in C (lengths, blank lines, top-level lines); each passage's
    end is then found by binary search, so the Python work is per passage, not per line."""
    max_chars = max_chars or (3000 if code else 1200)
    pieces = _line_pieces(text, max_chars)
    numbers: list[int] | None = None
    if not pieces and text:
        numbered = _pieces(text, max_chars)
        pieces, numbers = [p for p, _ in numbered], [n for _, n in numbered]
    count = len(pieces)
    cum = list(accumulate(map(len, pieces), initial=0))
    blank = list(compress(range(count), map(str.isspace, pieces)))
    top = list(compress(range(count), map(_TOP_LEVEL.match, pieces))) if code else []
    min_lines = 8 if code else 1
    blank_gap = max(min_lines, max_lines // 3) if code else min_lines
    ascii_text = text.isascii()
    chunks: list[Chunk] = []
    start = start_byte = 0
    while start < count:
        end = min(
            start + max_lines,
            bisect_right(cum, cum[start] + max_chars) - 1,
            _first_at_or_after(top, start + min_lines, count),
            _first_at_or_after(blank, start + blank_gap, count),
            count,
        )
        body = text[cum[start] : cum[end]]
        nbytes = len(body) if ascii_text else len(body.encode("utf-8", "surrogatepass"))
        if not body.isspace():
            first = numbers[start] if numbers else start + 1
            last = numbers[end - 1] if numbers else end
            chunks.append(Chunk(body, first, last, start_byte, start_byte + nbytes))
        start_byte += nbytes
        start = end
    return chunks


def _first_at_or_after(sorted_ids: list[int], at: int, default: int) -> int:
    i = bisect_left(sorted_ids, at)
    return sorted_ids[i] if i < len(sorted_ids) else default
