"""The warm searcher behind ``engram search``: a real searcher process on a real Unix socket,
its answers checked against ``rg`` and a reread of the files, including commits made while
it runs, a store replaced under it, a request for another memory, and two starting at once."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engram_sdk
from engram_sdk.cli import search_client
from engram_sdk.memory import Memory

pytestmark = pytest.mark.skipif(
    shutil.which("rg") is None or not hasattr(socket, "AF_UNIX"), reason="needs rg, AF_UNIX"
)

FILES = {
    "a.py": "def alpha_beta():\n    return AttributeError('x')\n",
    "pkg/b.py": "class Beta:\n    x = alpha_beta()  # ALPHA_beta here\n",
    "docs/c.md": "Nothing to see [bold]here[/bold].\n",
}
QUERIES = ("alpha_beta", "AttributeError", "[bold]", "class Beta")


def client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != search_client.OFF_ENV}
    env[search_client.IDLE_ENV] = "120"
    return env


def engram(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``engram ARGS`` in a fresh interpreter, output piped (the client's path)."""
    argv = [sys.executable, "-m", "engram_sdk.cli.main", *args]
    return subprocess.run(
        argv, capture_output=True, text=True, env=env or client_env(), timeout=120
    )


def rg_lines(query: str, root: Path) -> list[str]:
    """``path:line:text`` of every matching line, as ``rg -F -i -n`` prints them (the text
    without its indentation, as search snippets show it)."""
    run = subprocess.run(["rg", "-F", "-i", "-n", "--", query, str(root)], capture_output=True)
    lines = [line.split(":", 2) for line in run.stdout.decode().splitlines()]
    return sorted(f"{path}:{n}:{text.strip()}" for path, n, text in lines)


def wait_for_searcher(uri: str, *, running: bool = True) -> None:
    for _ in range(300):
        status = engram("search", "--daemon-status", "--store", uri)
        if (status.returncode == 0) == running:
            return
        time.sleep(0.1)
    raise AssertionError(f"searcher for {uri} running={not running}: {status.stdout}")


def served(uri: str) -> int:
    status = engram("search", "--daemon-status", "--store", uri).stdout
    return int(status.split(" queries")[0].rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory):
    """A memory whose folder path is longer than a socket address may be (108 bytes)."""
    tmp = tmp_path_factory.mktemp("searcher")
    root = tmp / "proj"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    folder = tmp / ("deep_" * 12) / ("folder_" * 10) / "mem"
    assert len(str(folder / search_client.SOCKET_NAME)) > search_client.MAX_UNIX_PATH
    uri = f"lmdb://{folder}"
    with Memory.open(uri) as mem:
        mem.ingest(root, progress=False)
    first = engram("search", "alpha_beta", "--all", "--store", uri)  # starts one and asks it
    assert first.returncode == 0, first.stderr
    wait_for_searcher(uri)
    yield root.resolve(), uri, folder, first.stdout
    engram("search", "--daemon-stop", "--store", uri)
    wait_for_searcher(uri, running=False)


def test_the_searcher_answers_what_ripgrep_finds(memory) -> None:
    root, uri, _, first = memory
    before = served(uri)
    for query in QUERIES:
        out = engram("search", query, "--all", "--store", uri)
        assert out.returncode == 0 and sorted(out.stdout.splitlines()) == rg_lines(query, root)
    assert served(uri) == before + len(QUERIES)
    assert engram("search", "alpha_beta", "--all", "--store", uri).stdout == first


@pytest.mark.slow  # the default output is compared in the ripgrep test above
def test_the_searchers_output_equals_the_in_process_output_for_each_option(memory) -> None:
    _, uri, _, _ = memory
    for options in ([], ["--json"], ["-l", "--all"], ["--regex"]):
        args = ["search", "alpha_?beta" if "--regex" in options else "alpha_beta", *options]
        warm = engram(*args, "--store", uri)
        here = engram(*args, "--store", uri, "--no-daemon")
        assert (warm.returncode, warm.stdout) == (here.returncode, here.stdout) and warm.stdout


def test_errors_from_the_searcher_read_as_in_process(memory) -> None:
    _, uri, _, _ = memory
    warm = engram("search", "x", "-k", "0", "--store", uri)
    here = engram("search", "x", "-k", "0", "--store", uri, "--no-daemon")
    assert warm.returncode == here.returncode == 2
    assert warm.stderr == here.stderr and warm.stderr.startswith("error:")


def test_the_searcher_sees_commits_made_while_it_runs(memory) -> None:
    root, uri, _, _ = memory
    new = root / "new.py"
    new.write_text("zeta_marker = 1\n")
    with Memory.open(uri) as mem:
        mem.ingest(root, progress=False)
    assert engram("search", "zeta_marker", "--store", uri).stdout.splitlines() == [
        f"{new}:1:zeta_marker = 1"
    ]
    new.write_text("other = 2\n\n# zeta_marker moved\n")
    with Memory.open(uri) as mem:
        mem.ingest(root, progress=False)
    reread = [f"{new}:{i}:{line.strip()}" for i, line in enumerate(new.read_text().splitlines(), 1)]
    found = engram("search", "zeta_marker", "--store", uri).stdout.splitlines()
    assert found == [line for line in reread if "zeta_marker" in line]
    new.unlink()
    with Memory.open(uri) as mem:
        mem.ingest(root, progress=False)
    assert engram("search", "zeta_marker", "--store", uri).stdout == ""
    assert rg_lines("zeta_marker", root) == []


def test_the_searcher_sees_a_scope_and_a_store_made_after_it_started(memory, tmp_path) -> None:
    _, uri, folder, _ = memory
    (tmp_path / "notes.md").write_text("kappa_scoped = 1\n")
    with Memory.open(uri) as mem:
        mem.ingest(tmp_path / "notes.md", scope="later", progress=False)
    expected = f"{(tmp_path / 'notes.md').resolve()}:1:kappa_scoped = 1\n"
    assert engram("search", "kappa_scoped", "--scope", "later", "--store", uri).stdout == expected
    assert served(uri) > 0
    os.replace(folder / "data.mdb", tmp_path / "old.mdb")  # the same folder, a new store
    (folder / "lock.mdb").unlink()
    with Memory.open(uri) as mem:
        assert mem.search("kappa_scoped", scope="later") == []
    assert engram("search", "kappa_scoped", "--scope", "later", "--store", uri).stdout == ""
    assert engram("search", "alpha_beta", "--store", uri).stdout == ""
    os.replace(tmp_path / "old.mdb", folder / "data.mdb")


def test_the_socket_is_private_to_the_user(memory) -> None:
    _, _, folder, _ = memory
    st = os.lstat(folder / search_client.SOCKET_NAME)
    assert st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o600


def test_a_request_for_another_memory_folder_is_refused(memory, tmp_path: Path) -> None:
    _, _, folder, _ = memory
    other = tmp_path / "other"
    other.mkdir()
    address, fd = search_client.socket_address(str(folder))
    request = {"op": "search", "args": {"query": "alpha_beta"}, "protocol": 1}
    request["version"] = engram_sdk.__version__
    request.update(zip(("dev", "ino"), search_client.folder_identity(str(other)), strict=True))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(address)
            conn.sendall(repr(request).encode() + b"\n")
            conn.shutdown(socket.SHUT_WR)
            reply = search_client.parse_reply(conn.makefile("rb").read())
    finally:
        if fd is not None:
            os.close(fd)
    assert isinstance(reply, search_client.Unanswered) and str(folder) in reply.reason


def test_a_first_search_starts_a_searcher_and_is_answered_by_it(tmp_path: Path) -> None:
    """No searcher runs: the call starts one and waits for it (the memory is opened once,
    not also in process); the answer is what ``rg`` finds, and two calls at once share it."""
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "z.py").write_text("tau_first = 1\n")
    (tmp_path / "p" / "y.py").write_text("x = tau_first + 1\n")
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        mem.ingest(tmp_path / "p", progress=False)
    argv = [sys.executable, "-m", "engram_sdk.cli.main", "search", "tau_first", "--store", uri]
    both = [subprocess.Popen(argv, stdout=subprocess.PIPE, env=client_env()) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=120)[0].decode() for p in both]
        assert [p.returncode for p in both] == [0, 0]
        assert sorted(outs[0].splitlines()) == rg_lines("tau_first", tmp_path / "p")
        assert outs[1] == outs[0]
        assert served(uri) == 2  # both calls were answered by the one searcher
    finally:
        engram("search", "--daemon-stop", "--store", uri)
        wait_for_searcher(uri, running=False)


def test_no_daemon_neither_asks_nor_starts_one(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.py").write_text("omega_token = 3\n")
    uri = f"lmdb://{tmp_path / 'mem'}"
    with Memory.open(uri) as mem:
        mem.ingest(tmp_path / "p", progress=False)
    out = engram("search", "omega_token", "--no-daemon", "--store", uri)
    env = dict(client_env(), ENGRAM_NO_DAEMON="1")
    assert engram("search", "omega_token", "--store", uri, env=env).stdout == out.stdout
    assert out.stdout == f"{(tmp_path / 'p' / 'x.py').resolve()}:1:omega_token = 3\n"
    time.sleep(0.5)
    assert not (tmp_path / "mem" / search_client.SOCKET_NAME).exists()


def test_two_searchers_started_at_once_leave_one_that_gives_way_to_another_release(
    tmp_path: Path,
) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "y.py").write_text("sigma_once = 4\n")
    folder = tmp_path / "mem"
    with Memory.open(f"lmdb://{folder}") as mem:
        mem.ingest(tmp_path / "p", progress=False)
    argv = [sys.executable, "-m", "engram_sdk.cli.searcher", "--folder", str(folder)]
    both = [subprocess.Popen([*argv, "--idle", "60"], env=client_env()) for _ in range(2)]
    try:
        loser = None
        for _ in range(600):
            loser = next((p for p in both if p.poll() is not None), None)
            if loser is not None:
                break
            time.sleep(0.05)
        assert loser is not None and loser.returncode == 3
        uri = f"lmdb://{folder}"
        wait_for_searcher(uri)
        out = engram("search", "sigma_once", "--store", uri).stdout
        assert out == f"{(tmp_path / 'p' / 'y.py').resolve()}:1:sigma_once = 4\n"
        assert served(uri) == 1 and search_client.searcher_holds_lock(str(folder))
        # a client of another release: refused, and the searcher makes way for a new one
        reply = search_client.ask(str(folder), {"op": "status", "version": "0.0.0-other"})
        assert isinstance(reply, search_client.Unanswered) and "exiting" in reply.reason
        winner = next(p for p in both if p is not loser)
        assert winner.wait(timeout=30) == 0 and not search_client.searcher_holds_lock(str(folder))
        assert not (folder / search_client.SOCKET_NAME).exists()
    finally:
        for p in both:
            if p.poll() is None:
                p.kill()


def test_asking_the_searcher_imports_only_the_standard_library(memory) -> None:
    _, uri, _, _ = memory
    probe = (
        "import sys\nHEAVY = {'json', 'socket', 'dataclasses', 'typing', 'subprocess'}\n"
        "before = set(sys.modules)\nfrom engram_sdk.cli.main import main\n"
        "code = main()\nnew = set(sys.modules) - before\n"
        "print(sorted(m for m in new if m.split('.')[0] not in sys.stdlib_module_names),"
        " file=sys.stderr)\nprint(sorted(new & HEAVY), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, "search", "alpha_beta", "--store", uri],
        capture_output=True,
        text=True,
        env=client_env(),
        timeout=120,
    )
    assert run.returncode == 0 and run.stdout.count("alpha_beta") == 2
    light = ["", "._version", ".cli", ".cli.fast_search", ".cli.main", ".cli.search_client"]
    ours, heavy = run.stderr.splitlines()
    assert ours == str(sorted(f"engram_sdk{m}" for m in light)), run.stderr
    assert heavy == "[]", run.stderr  # nor json, socket, dataclasses, typing or subprocess
