"""Split files into passages on structural boundaries, keeping line and byte offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def chunk_text(
    text: str, code: bool, max_lines: int = 60, max_chars: int | None = None
) -> list[Chunk]:
    """Code splits before top-level definitions and at blank lines once a passage is long
    enough; prose splits at blank lines (paragraphs). No passage exceeds ``max_lines`` lines
    or ``max_chars`` characters; a longer single line is cut at sentence ends."""
    max_chars = max_chars or (3000 if code else 1200)
    pieces = _pieces(text, max_chars)
    chunks: list[Chunk] = []
    start = size = start_byte = 0
    min_lines = 8 if code else 1

    def flush(end: int) -> None:
        nonlocal start, size, start_byte
        if end > start:
            body = "".join(p for p, _ in pieces[start:end])
            nbytes = len(body.encode("utf-8", "surrogatepass"))
            if body.strip():
                chunks.append(
                    Chunk(
                        body, pieces[start][1], pieces[end - 1][1], start_byte, start_byte + nbytes
                    )
                )
            start_byte += nbytes
        start, size = end, 0

    for i, (piece, _) in enumerate(pieces):
        n_here = i - start
        blank = not piece.strip()
        boundary = (code and _TOP_LEVEL.match(piece) and n_here >= min_lines) or (
            blank and n_here >= min_lines and (not code or n_here >= max_lines // 3)
        )
        if boundary or n_here >= max_lines or size + len(piece) > max_chars:
            flush(i)
        size += len(piece)
    flush(len(pieces))
    return chunks
