"""The thin client of ``engram search``: ask a warm searcher process, standard library only.

Starting Python and importing numpy costs more than ripgrep's whole scan of 100 MB, so a
piped ``engram search`` first asks a searcher that already has the memory open (see
:mod:`engram_sdk.cli.searcher`) and prints its ``path:line:text`` lines verbatim. The
searcher listens on a Unix socket inside the memory's own folder
(``<folder>/.engram-searcher.sock``, mode 0600, owned by the user); when none runs, the
caller searches in process and then starts one in the background (:func:`start_searcher`),
which exits after :data:`DEFAULT_IDLE_S` seconds without a query.

``--no-daemon`` or ``ENGRAM_NO_DAEMON=1`` turn all of this off. Only ``lmdb://`` memories
are served (other stores are searched in process). This module imports nothing outside the
standard library (checked by ``tests/cli/test_searcher.py``), so asking costs only the
interpreter's start.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import NamedTuple

SOCKET_NAME = ".engram-searcher.sock"
LOCK_NAME = ".engram-searcher.lock"
PROTOCOL = 1  # format version of requests and replies
DEFAULT_IDLE_S = 900.0  # a searcher exits after this long without a query
IDLE_ENV = "ENGRAM_SEARCHER_IDLE_S"
OFF_ENV = "ENGRAM_NO_DAEMON"
MAX_UNIX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
CONNECT_TIMEOUT_S = 2.0
REPLY_TIMEOUT_S = 60.0


class Reply(NamedTuple):
    """What a searcher answered: exit code, stderr text and stdout text."""

    code: int
    stderr: str
    stdout: str


class Unanswered(NamedTuple):
    """No searcher answered; ``start`` says whether starting one makes sense (none runs)."""

    start: bool
    reason: str


def daemon_disabled(no_daemon_flag: bool) -> bool:
    """True when ``--no-daemon`` was given, ``ENGRAM_NO_DAEMON`` is set (not 0/empty), or
    the platform has no Unix sockets."""
    off = no_daemon_flag or os.environ.get(OFF_ENV, "") not in ("", "0")
    return off or not hasattr(socket, "AF_UNIX")


def default_memory_uri() -> str:
    """The memory URI a call without ``--store`` opens (as ``memory.default_uri``)."""
    from engram_sdk.paths import data_dir

    return os.environ.get("ENGRAM_MEMORY_URI") or f"lmdb://{data_dir() / 'memory'}"


def memory_folder(uri: str | None) -> str | None:
    """The absolute folder of an ``lmdb://`` memory URI; None for other stores or a URI the
    store layer would reject (the in-process search then reports it)."""
    from urllib.parse import unquote, urlparse

    uri = uri or default_memory_uri()
    if not uri.startswith("lmdb://"):
        return None
    parsed = urlparse(uri)
    raw = unquote(parsed.netloc + parsed.path)
    if not raw or "\x00" in raw:
        return None
    return os.path.abspath(os.path.expanduser(raw))


def socket_address(folder: str, name: str = SOCKET_NAME) -> tuple[str, int | None]:
    """An address for ``folder/name`` that fits ``sun_path``, and a folder descriptor to
    close afterwards: long paths go through ``/proc/self/fd/N`` (Linux; elsewhere
    :class:`OSError`, and the search runs in process)."""
    path = os.path.join(folder, name)
    if len(os.fsencode(path)) <= MAX_UNIX_PATH:
        return path, None
    if not os.path.isdir("/proc/self/fd"):
        raise OSError(f"{path}: too long for a Unix socket address")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}", fd


def folder_identity(folder: str) -> tuple[int, int]:
    """(device, inode) of a folder: what a searcher compares to serve only its own memory."""
    st = os.stat(folder)
    return st.st_dev, st.st_ino


def ask(folder: str, request: dict[str, object]) -> Reply | Unanswered:
    """Send one request to the searcher of ``folder``; its reply, or why none came."""
    path = os.path.join(folder, SOCKET_NAME)
    try:
        st = os.lstat(path)
        ident = folder_identity(folder)
    except OSError:
        return Unanswered(start=True, reason="no searcher")
    if st.st_uid != os.getuid() or (st.st_mode & 0o077):
        return Unanswered(start=False, reason=f"{path} is not a private socket of this user")
    try:
        address, fd = socket_address(folder)
    except OSError as exc:
        return Unanswered(start=False, reason=str(exc))
    body = dict(request, protocol=PROTOCOL, folder=folder, dev=ident[0], ino=ident[1])
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(CONNECT_TIMEOUT_S)
            conn.connect(address)
            conn.settimeout(REPLY_TIMEOUT_S)
            conn.sendall(json.dumps(body).encode() + b"\n")
            conn.shutdown(socket.SHUT_WR)
            data = _read_all(conn)
    except (ConnectionRefusedError, FileNotFoundError):
        return Unanswered(start=True, reason="stale socket")
    except OSError as exc:
        return Unanswered(start=False, reason=f"searcher did not answer: {exc}")
    finally:
        if fd is not None:
            os.close(fd)
    return _parse_reply(data)


def _read_all(conn: socket.socket) -> bytes:
    parts = []
    while chunk := conn.recv(1 << 20):
        parts.append(chunk)
    return b"".join(parts)


def _parse_reply(data: bytes) -> Reply | Unanswered:
    head, newline, body = data.partition(b"\n")
    try:
        header = json.loads(head) if newline else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("protocol") != PROTOCOL:
        return Unanswered(start=False, reason="the searcher's reply is not readable")
    if "refused" in header:
        return Unanswered(start=False, reason=str(header["refused"]))
    text = body.decode("utf-8", "surrogatepass")
    return Reply(int(header.get("code", 1)), str(header.get("stderr", "")), text)


def search_via_searcher(folder: str, args: dict[str, object]) -> Reply | Unanswered:
    """Run one ``engram search`` (its parsed options) on the searcher of ``folder``."""
    return ask(folder, {"op": "search", "args": args})


def start_searcher(folder: str) -> None:
    """Start a searcher for ``folder`` in the background (it exits at once if one runs)."""
    import subprocess

    long_path = len(os.fsencode(os.path.join(folder, SOCKET_NAME))) > MAX_UNIX_PATH
    if long_path and not os.path.isdir("/proc/self/fd"):
        return  # it could not bind its socket
    idle = os.environ.get(IDLE_ENV) or str(DEFAULT_IDLE_S)
    argv = [sys.executable, "-m", "engram_sdk.cli.searcher", "--folder", folder, "--idle", idle]
    subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        cwd=folder,
    )


def control(folder: str | None, op: str) -> int:
    """``engram search --daemon-status`` / ``--daemon-stop``: print one line; exit code 0
    (status: 0 if one runs, 1 if none)."""
    if folder is None:
        sys.stdout.write("no searcher: only lmdb:// memories have one\n")
        return 1 if op == "status" else 0
    reply = ask(folder, {"op": op})
    if isinstance(reply, Unanswered):
        sys.stdout.write(f"no searcher for {folder} ({reply.reason})\n")
        return 1 if op == "status" else 0
    sys.stdout.write(reply.stdout)
    return reply.code
