"""Read a walked file without trusting that it is still what the walk saw.

Between the walk and the read a file can be swapped for a symlink out of the root, a FIFO
(whose ``read`` blocks forever) or something far larger. So the file is opened with
``O_NOFOLLOW | O_NONBLOCK``, the open descriptor is ``fstat``-ed (a regular file, the same
device and inode as walked, within the size limit) and at most the limit is read from it.
Binary files are recognised as ripgrep does (a NUL byte) plus the magic numbers of common
executables and archives; text that is not UTF-8 is decoded as Windows-1252/Latin-1 (every
byte maps to one character, so nothing is lost) or, when it is mostly UTF-8, with
replacement characters that are counted and reported.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

BINARY_MAGIC = (
    b"\x7fELF",  # ELF executables and libraries
    b"MZ\x90\x00",  # Windows PE
    b"\xfe\xed\xfa",  # Mach-O
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O fat binaries, Java classes
    b"\x1f\x8b",  # gzip
    b"PK\x03\x04",  # zip, jar, wheel, docx
    b"\x89PNG",
    b"\xff\xd8\xff",  # JPEG
    b"GIF8",
    b"%PDF-",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"\x28\xb5\x2f\xfd",  # zstd
    b"SQLite format 3\x00",
)


class SkipFile(Exception):
    """The file is not read; ``reason`` is binary, too_large, special, changed or unreadable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Identity:
    """What the walk saw: the device and inode of a regular file."""

    dev: int
    ino: int


def read_limited(path: str | os.PathLike[str], max_bytes: int, expect: Identity | None) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; raises :class:`SkipFile`."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:  # ELOOP: it became a symlink; ENXIO: a FIFO or socket
        raise SkipFile("unreadable", exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SkipFile("special", "not a regular file")
        if expect is not None and (st.st_dev, st.st_ino) != (expect.dev, expect.ino):
            raise SkipFile("changed", "replaced by another file since the walk")
        if st.st_size > max_bytes:
            raise SkipFile("too_large", f"{st.st_size} bytes > {max_bytes}")
        chunks, left = [], max_bytes + 1
        while left > 0:
            part = os.read(fd, min(left, 1 << 20))
            if not part:
                break
            chunks.append(part)
            left -= len(part)
        data = b"".join(chunks)
        if len(data) > max_bytes:  # it grew since the fstat
            raise SkipFile("too_large", f"more than {max_bytes} bytes")
        return data
    except OSError as exc:
        raise SkipFile("unreadable", exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def looks_binary(data: bytes) -> bool:
    """A NUL byte anywhere, or the magic number of an executable, archive or image."""
    return b"\x00" in data or data.startswith(BINARY_MAGIC)


@dataclass(frozen=True)
class DecodedText:
    """Text of a file, the encoding it was read with and how many bytes were replaced."""

    text: str
    encoding: str
    replaced_bytes: int


def decode_text(data: bytes) -> DecodedText:
    """UTF-8 if valid; else Windows-1252/Latin-1 when no UTF-8 multi-byte sequence occurs;
    else UTF-8 with U+FFFD for the undecodable bytes, which are counted."""
    try:
        return DecodedText(data.decode("utf-8"), "utf-8", 0)
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    utf8_chars = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    if not utf8_chars:
        try:
            return DecodedText(data.decode("cp1252"), "cp1252", 0)
        except UnicodeDecodeError:
            return DecodedText(data.decode("latin-1"), "latin-1", 0)
    replaced = len(data) - len(text.encode("utf-8")) + 3 * text.count("\ufffd")
    return DecodedText(text, "utf-8", max(replaced, text.count("\ufffd")))
