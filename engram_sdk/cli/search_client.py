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
standard library (checked by ``tests/cli/test_searcher.py``), and of that only the cheap
parts, so asking costs little more than the interpreter's start.

Wire format (one request per connection, :data:`PROTOCOL`): the client writes the
``repr`` of a dict of plain values (str, int, bool, None; read back with
``ast.literal_eval``) and shuts its side; the searcher answers ``PROTOCOL CODE N\n``, then
N bytes of stderr text, then the stdout text (UTF-8) until it closes. ``CODE`` -1 means
refused, the stderr text saying why.
"""

from __future__ import annotations

import _socket  # the C module under ``socket``: importing ``socket`` costs more than a search
import os
import sys

from engram_sdk._version import __version__

TYPE_CHECKING = False  # (not typing's: the client imports as little as it can)
if TYPE_CHECKING:
    import subprocess

SOCKET_NAME = ".engram-searcher.sock"
LOCK_NAME = ".engram-searcher.lock"
PROTOCOL = 1  # format version of requests and replies
DEFAULT_IDLE_S = 900.0  # a searcher exits after this long without a query
IDLE_ENV = "ENGRAM_SEARCHER_IDLE_S"
OFF_ENV = "ENGRAM_NO_DAEMON"
MAX_UNIX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
CONNECT_TIMEOUT_S = 2.0
STARTING_WAIT_S = 3.0  # how long a client waits for a searcher that is still opening the memory
REPLY_TIMEOUT_S = 60.0
REFUSED = -1
_URL_SYNTAX = "%;?#[]\t\r\n"  # what urlparse + unquote would read in a path (else: as is)


class Reply:
    """What a searcher answered: exit code, stderr text and stdout text."""

    __slots__ = ("code", "stderr", "stdout")

    def __init__(self, code: int, stderr: str, stdout: str) -> None:
        self.code, self.stderr, self.stdout = code, stderr, stdout


class Unanswered:
    """No searcher answered; ``start`` says whether starting one makes sense (none runs)."""

    __slots__ = ("reason", "start")

    def __init__(self, *, start: bool, reason: str) -> None:
        self.start, self.reason = start, reason


def encode_reply(code: int, stderr: str, stdout: str) -> bytes:
    """A searcher's answer on the wire (see the module docstring)."""
    err = stderr.encode("utf-8", "surrogatepass")
    head = f"{PROTOCOL} {code} {len(err)}\n".encode()
    return head + err + stdout.encode("utf-8", "surrogatepass")


def daemon_disabled(no_daemon_flag: bool) -> bool:
    """True when ``--no-daemon`` was given, ``ENGRAM_NO_DAEMON`` is set (not 0/empty), or
    the platform has no Unix sockets."""
    off = no_daemon_flag or os.environ.get(OFF_ENV, "") not in ("", "0")
    return off or not hasattr(_socket, "AF_UNIX")


def default_memory_uri() -> str:
    """The memory URI a call without ``--store`` opens (as ``memory.default_uri``)."""
    from engram_sdk.paths import data_dir

    return os.environ.get("ENGRAM_MEMORY_URI") or f"lmdb://{data_dir() / 'memory'}"


def memory_folder(uri: str | None) -> str | None:
    """The absolute folder of an ``lmdb://`` memory URI; None for other stores or a URI the
    store layer would reject (the in-process search then reports it)."""
    uri = uri or default_memory_uri()
    if not uri.startswith("lmdb://"):
        return None
    raw = uri[len("lmdb://") :]
    if not raw or raw[0] <= " " or any(c in raw for c in _URL_SYNTAX):
        from urllib.parse import unquote, urlparse  # (a plain path needs neither: ~2 ms)

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
    body = {"protocol": PROTOCOL, "version": __version__, "folder": folder}
    body.update(dev=ident[0], ino=ident[1], **request)
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.settimeout(CONNECT_TIMEOUT_S)
        conn.connect(address)
        conn.settimeout(REPLY_TIMEOUT_S)
        conn.sendall(repr(body).encode("utf-8", "surrogatepass") + b"\n")
        conn.shutdown(_socket.SHUT_WR)
        data = _read_all(conn)
    except (ConnectionRefusedError, FileNotFoundError):
        return Unanswered(start=True, reason="stale socket")
    except OSError as exc:
        return Unanswered(start=False, reason=f"searcher did not answer: {exc}")
    finally:
        conn.close()
        if fd is not None:
            os.close(fd)
    return parse_reply(data)


def _read_all(conn: _socket.socket) -> bytes:
    parts = []
    while chunk := conn.recv(1 << 20):
        parts.append(chunk)
    return b"".join(parts)


def parse_reply(data: bytes) -> Reply | Unanswered:
    """Read a searcher's answer (see the module docstring)."""
    head, newline, rest = data.partition(b"\n")
    fields = head.split()
    if not newline or len(fields) != 3 or fields[0] != str(PROTOCOL).encode():
        return Unanswered(start=False, reason="the searcher's reply is not readable")
    try:
        code, n_err = int(fields[1]), int(fields[2])
    except ValueError:
        return Unanswered(start=False, reason="the searcher's reply is not readable")
    stderr = rest[:n_err].decode("utf-8", "surrogatepass")
    if code == REFUSED:
        return Unanswered(start=False, reason=stderr)
    return Reply(code, stderr, rest[n_err:].decode("utf-8", "surrogatepass"))


def search_via_searcher(folder: str, args: dict[str, object]) -> Reply | Unanswered:
    """Run one ``engram search`` (its parsed options) on the searcher of ``folder``."""
    return ask(folder, {"op": "search", "args": args})


def wait_for_socket(
    folder: str, spawned: subprocess.Popen[bytes] | None, timeout_s: float = STARTING_WAIT_S
) -> bool:
    """Wait up to ``timeout_s`` for the socket of a searcher that is starting (``spawned``
    by this client, or another that holds the folder's lock); True once it is there, False
    as soon as no searcher is starting any more."""
    import time

    path = os.path.join(folder, SOCKET_NAME)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.path.lexists(path):
            return True
        if (spawned is None or spawned.poll() is not None) and not searcher_holds_lock(folder):
            return os.path.lexists(path)
        time.sleep(0.005)
    return False


def start_searcher(folder: str) -> subprocess.Popen[bytes] | None:
    """Start a searcher for ``folder`` in the background (it exits at once if one runs);
    None if none was started (the folder holds no memory, or one is starting already)."""
    import subprocess

    long_path = len(os.fsencode(os.path.join(folder, SOCKET_NAME))) > MAX_UNIX_PATH
    if long_path and not os.path.isdir("/proc/self/fd"):
        return None  # it could not bind its socket
    if not os.path.isfile(os.path.join(folder, "data.mdb")) or searcher_holds_lock(folder):
        return None  # no memory there, or one is starting (opening the memory) or running
    idle = os.environ.get(IDLE_ENV) or str(DEFAULT_IDLE_S)
    argv = [sys.executable, "-m", "engram_sdk.cli.searcher", "--folder", folder, "--idle", idle]
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd=folder,
        )
    except OSError:
        return None  # the folder went away meanwhile: the search runs in process anyway


def searcher_holds_lock(folder: str) -> bool:
    """True while a searcher of ``folder`` lives (it holds the folder's lock from its start)."""
    import fcntl

    try:
        fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


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
