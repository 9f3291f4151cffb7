"""Full check of an ``lmdb://`` store, run in a child process by ``LmdbStore.verify()``.

LMDB trusts its pages: a corrupted B-tree page can make it fail an assertion (SIGABRT) or
read outside the map (SIGSEGV / SIGBUS), which kills the process that reads it. ``verify``
therefore walks the store here, in a separate interpreter (``python -m
engram_sdk.stores.lmdb_check FOLDER``), which prints its report as JSON; the parent turns a
crash into a named problem instead of dying with it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import lmdb
from engram_sdk.stores.errors import StoreError
from engram_sdk.stores.lmdb_format import describe_key, unseal
from engram_sdk.stores.models import Problem, TableSpec, VerifyReport
from pydantic import ValidationError


def check_in_child(folder: Path, report: VerifyReport) -> None:
    """Run :func:`check` in a child interpreter; a crash there becomes a problem here."""
    path = str(folder / "data.mdb")
    proc = subprocess.run(
        [sys.executable, "-m", "engram_sdk.stores.lmdb_check", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        detail = proc.stderr.strip().splitlines()[-1:] or [""]
        report.checked_files = 1
        report.problems.append(
            Problem(
                file=path,
                message=f"LMDB crashed ({name}) walking the B-tree of {path}: a page is corrupt "
                f"{detail[0]}".rstrip(),
            )
        )
        return
    try:
        child = VerifyReport.model_validate_json(proc.stdout.strip().splitlines()[-1])
    except (ValidationError, ValueError, IndexError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        report.problems.append(Problem(file=path, message=f"the check failed: {tail}"))
        return
    report.checked_files += child.checked_files
    report.checked_bytes += child.checked_bytes
    report.checked_records += child.checked_records
    report.problems.extend(child.problems)


def check(folder: Path) -> VerifyReport:
    """Open the store read-only and check every value: size, checksum, table, namespace."""
    from engram_sdk.stores.lmdb_store import LmdbStore

    path = folder / "data.mdb"
    report = VerifyReport(uri=f"lmdb://{folder}", checked_files=1)
    try:
        store = LmdbStore(f"lmdb://{folder}", "r", folder)
    except StoreError as exc:
        report.problems.append(Problem(file=str(path), offset=exc.offset, message=str(exc)))
        return report
    try:
        with store._read() as txn:
            _check_rows(store, txn, report)
            _check_records(store, txn, report)
    except (StoreError, lmdb.Error) as exc:
        report.problems.append(Problem(file=str(path), message=str(exc)))
    finally:
        store.close()
    return report


def _check_rows(store, txn: lmdb.Transaction, report: VerifyReport) -> None:
    from engram_sdk.stores.lmdb_store import rows_per_block

    path = store.folder / "data.mdb"
    specs: dict[str, TableSpec] = store._tables
    for key, value in txn.cursor(db=store.rows_db):
        key = bytes(key)
        name, sep, block = key.partition(b"\x00")
        spec = specs.get(name.decode(errors="replace"))
        report.checked_bytes += len(value)
        if not sep or len(block) != 8 or spec is None:
            report.problems.append(
                Problem(file=str(path), message=f"row block under unknown key {describe_key(key)}")
            )
            continue
        b = int.from_bytes(block, "big")
        rpb = rows_per_block(spec)
        want = max(0, min(rpb, spec.rows - b * rpb)) * spec.row_bytes
        try:
            payload = unseal(path, f"table {spec.name!r} block {b}", key, value, store._checked)
        except StoreError as exc:
            report.problems.append(Problem(file=str(path), message=str(exc)))
            continue
        if not _findable(txn, store.rows_db, key, value, report, path):
            continue
        if len(payload) != want:
            report.problems.append(
                Problem(
                    file=str(path),
                    message=f"table {spec.name!r} block {b}: {len(payload)} bytes, expected {want}",
                )
            )


def _check_records(store, txn: lmdb.Transaction, report: VerifyReport) -> None:
    path = store.folder / "data.mdb"
    for key, value in txn.cursor(db=store.rec_db):
        key = bytes(key)
        ns, sep, _ = key.partition(b"\x00")
        report.checked_bytes += len(key) + len(value)
        report.checked_records += 1
        try:
            unseal(path, f"record {describe_key(key)}", key, value, store._checked)
        except StoreError as exc:
            report.problems.append(Problem(file=str(path), message=str(exc)))
            continue
        if not _findable(txn, store.rec_db, key, value, report, path):
            continue
        if not sep or ns.decode(errors="replace") not in store._ns:
            report.problems.append(
                Problem(file=str(path), message=f"record of unknown namespace {describe_key(key)}")
            )


def _findable(txn, db, key: bytes, value, report: VerifyReport, path: Path) -> bool:
    """A lookup by key finds what the walk found (a corrupt branch key would misroute it)."""
    found = txn.get(key, db=db)
    if found is not None and bytes(found) == bytes(value):
        return True
    report.problems.append(
        Problem(
            file=str(path),
            message=f"entry {describe_key(key)} is in the B-tree but a lookup of its key "
            f"{'misses it' if found is None else 'finds other bytes'} (a corrupt branch page)",
        )
    )
    return False


if __name__ == "__main__":
    print(check(Path(sys.argv[1])).model_dump_json())
