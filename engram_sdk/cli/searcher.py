"""The warm searcher: one process per memory folder that keeps the memory open and answers
``engram search`` clients over a Unix socket (see :mod:`engram_sdk.cli.search_client`).

    python -m engram_sdk.cli.searcher --folder DIR [--idle SECONDS]

Rules it keeps:

- **one per folder**: it holds an exclusive ``flock`` on ``DIR/.engram-searcher.lock`` for
  its whole life; a second one started at the same moment exits at once. The socket is bound
  under a temporary name and renamed into place, so clients never see a half-made one.
- **only its own memory**: each request names the folder's (device, inode); a request for
  any other folder is refused (the client then searches in process). It exits when its
  folder is gone, replaced, or its socket was removed.
- **never stale**: before each query it compares the store's file identity and the memory
  manifest (which every commit that adds passages or scopes rewrites) with what it opened,
  and reopens the memory if either moved; within a scope the index's own generation
  (changed by every commit) keeps its caches honest.
- **private**: the socket is mode 0600 and a peer of another user (``SO_PEERCRED``) is
  refused.
- **idle exit** after ``--idle`` seconds without a request.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import io
import os
import signal
import socket
import struct
import time
from contextlib import ExitStack, suppress
from typing import Any

from engram_sdk._version import __version__
from engram_sdk.cli.errors import describe_error
from engram_sdk.cli.fast_search import SearchArgs, run
from engram_sdk.cli.search_client import (
    LOCK_NAME,
    PROTOCOL,
    REFUSED,
    SOCKET_NAME,
    encode_reply,
    folder_identity,
    socket_address,
)
from engram_sdk.memory.memory import META, Memory

POLL_S = 1.0  # how often an idle searcher checks its folder and its idle time
MAX_REQUEST_BYTES = 1 << 20
REQUEST_TIMEOUT_S = 5.0


class WarmMemory:
    """A read-only memory kept open, reopened whenever the store changed underneath."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.uri = "lmdb://" + folder
        self.mem: Memory | None = None
        self.opened_as: tuple[tuple[int, int], bytes | None] | None = None

    def _state(self) -> tuple[tuple[int, int], bytes | None]:
        st = os.stat(os.path.join(self.folder, "data.mdb"))
        manifest = self.mem.store.get(META, b"manifest") if self.mem is not None else None
        return (st.st_dev, st.st_ino), manifest

    def fresh(self) -> Memory:
        """The open memory, reopened first if the store file or manifest moved."""
        if self.mem is not None and self._state() == self.opened_as:
            return self.mem
        self.close()
        self.mem = Memory.open(self.uri, "r")
        self.opened_as = self._state()
        return self.mem

    def close(self) -> None:
        if self.mem is not None:
            self.mem.close()
            self.mem = None


class Searcher:
    """The accept loop of one folder's searcher."""

    def __init__(self, folder: str, idle_s: float) -> None:
        self.folder = folder
        self.identity = folder_identity(folder)
        self.idle_s = idle_s
        self.warm = WarmMemory(folder)
        self.started = time.time()
        self.served = 0
        self.stopping = False

    def serve(self, listener: socket.socket, socket_ino: int) -> None:
        """Answer requests until idle, stopped, or the folder or socket is gone."""
        listener.settimeout(POLL_S)
        last = time.monotonic()
        while not self.stopping:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if time.monotonic() - last > self.idle_s or not self._still_mine(socket_ino):
                    return
                continue
            with conn:
                self._answer(conn)
            last = time.monotonic()

    def _still_mine(self, socket_ino: int) -> bool:
        try:
            same_folder = folder_identity(self.folder) == self.identity
            st = os.lstat(os.path.join(self.folder, SOCKET_NAME))
        except OSError:
            return False
        return same_folder and st.st_ino == socket_ino

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(REQUEST_TIMEOUT_S)
            request = _read_request(conn)
            refused = self._refusal(conn, request)
            code, stderr, stdout = (REFUSED, refused, "") if refused else self._handle(request)
            conn.sendall(encode_reply(code, stderr, stdout))
        except (OSError, ValueError, SyntaxError):
            return  # a client that went away or sent garbage: it falls back on its own

    def _handle(self, request: dict[str, Any]) -> tuple[int, str, str]:
        """Exit code, stderr and stdout text for one request from this folder's user."""
        op = request.get("op")
        if op == "stop":
            self.stopping = True
            return 0, "", f"searcher for {self.folder} stopped\n"
        if op == "status":
            line = (
                f"searcher pid {os.getpid()} for {self.folder}: up {time.time() - self.started:.0f} s,"
                f" {self.served} queries, exits after {self.idle_s:.0f} s idle\n"
            )
            return 0, "", line
        if op != "search" or not isinstance(request.get("args"), dict):
            return REFUSED, f"unknown request {op!r}", ""
        return self._search(request["args"])

    def _refusal(self, conn: socket.socket, request: dict[str, Any]) -> str | None:
        if _peer_uid(conn) not in (None, os.getuid()):
            return "a searcher answers its own user only"
        if (request.get("protocol"), request.get("version")) != (PROTOCOL, __version__):
            self.stopping = True  # a client of another release: make way for its searcher
            return f"this searcher is engram-sdk {__version__}, protocol {PROTOCOL}; exiting"
        if (request.get("dev"), request.get("ino")) != self.identity:
            return f"this searcher serves {self.folder} only"
        return None

    def _search(self, raw_args: dict[str, Any]) -> tuple[int, str, str]:
        try:
            args = SearchArgs(**raw_args)
        except TypeError as exc:
            return REFUSED, f"unreadable search options: {exc}", ""
        out = io.StringIO()
        try:
            run(args, out, self.warm.fresh())
        except Exception as exc:  # reported to the client exactly as in process
            self.warm.close()  # reopen next time: the failure may have been the store's
            code, message = describe_error(exc)
            return code, f"error: {message}\n", ""
        self.served += 1
        return 0, "", out.getvalue()


def _read_request(conn: socket.socket) -> dict[str, Any]:
    """The client's dict of plain values (``ast.literal_eval``: nothing is executed)."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk or len(data) > MAX_REQUEST_BYTES:
            break
        data += chunk
    request = ast.literal_eval(data.partition(b"\n")[0].decode("utf-8", "surrogatepass"))
    if not isinstance(request, dict):
        raise ValueError("a request is a dict")
    return request


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _bind_private(folder: str, stack: ExitStack) -> tuple[socket.socket, int]:
    """A listening socket at ``folder/SOCKET_NAME`` (mode 0600), placed atomically; its inode."""
    tmp_name = f".engram-searcher.{os.getpid()}.tmp"
    address, fd = socket_address(folder, tmp_name)
    listener = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    old_umask = os.umask(0o077)
    try:
        listener.bind(address)
    finally:
        os.umask(old_umask)
        if fd is not None:
            os.close(fd)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.chmod(tmp_name, 0o600, dir_fd=dir_fd)
    listener.listen(64)
    os.rename(tmp_name, SOCKET_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    ino = os.stat(SOCKET_NAME, dir_fd=dir_fd, follow_symlinks=False).st_ino
    stack.callback(_unlink_if_ours, dir_fd, ino)
    return listener, ino


def _unlink_if_ours(dir_fd: int, ino: int) -> None:
    with suppress(OSError):
        if os.stat(SOCKET_NAME, dir_fd=dir_fd, follow_symlinks=False).st_ino == ino:
            os.unlink(SOCKET_NAME, dir_fd=dir_fd)
    os.close(dir_fd)


def run_searcher(folder: str, idle_s: float) -> int:
    """Serve ``folder`` until idle; 0, or 3 if another searcher already serves it."""
    folder = os.path.abspath(folder)
    lock_fd = os.open(
        os.path.join(folder, LOCK_NAME),
        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
    )
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return 3
    searcher = Searcher(folder, idle_s)
    signal.signal(signal.SIGTERM, _exit_on_signal)  # clean up the socket on `kill`
    with ExitStack() as stack:
        stack.callback(os.close, lock_fd)
        stack.callback(searcher.warm.close)
        searcher.warm.fresh()  # open before listening: a waiting client asks at once
        listener, ino = _bind_private(folder, stack)
        searcher.serve(listener, ino)
    return 0


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m engram_sdk.cli.searcher")
    parser.add_argument("--folder", required=True, help="the lmdb:// memory folder to serve")
    parser.add_argument("--idle", type=float, default=900.0, help="exit after this many idle s")
    ns = parser.parse_args()
    return run_searcher(ns.folder, ns.idle)


if __name__ == "__main__":
    raise SystemExit(main())
