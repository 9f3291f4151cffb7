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


def chunk_text(text: str, code: bool, max_lines: int = 60, max_chars: int = 3000) -> list[Chunk]:
    """Code splits before top-level definitions and at blank lines once a passage is long
    enough; prose splits at blank lines (paragraphs). No passage exceeds ``max_lines``."""
    lines = text.splitlines(keepends=True)
    chunks: list[Chunk] = []
    start = 0
    size = 0
    byte_pos = 0
    start_byte = 0
    min_lines = 8 if code else 1

    def flush(end: int) -> None:
        nonlocal start, size, start_byte
        if end > start:
            body = "".join(lines[start:end])
            if body.strip():
                nbytes = len(body.encode("utf-8", "surrogatepass"))
                chunks.append(Chunk(body, start + 1, end, start_byte, start_byte + nbytes))
                start_byte += nbytes
            else:
                start_byte += len(body.encode("utf-8", "surrogatepass"))
        start, size = end, 0

    for i, line in enumerate(lines):
        n_here = i - start
        blank = not line.strip()
        boundary = (code and _TOP_LEVEL.match(line) and n_here >= min_lines) or (
            blank and n_here >= min_lines and (not code or n_here >= max_lines // 3)
        )
        if boundary or n_here >= max_lines or size + len(line) > max_chars:
            flush(i)
        size += len(line)
        byte_pos += len(line)
    flush(len(lines))
    return chunks
