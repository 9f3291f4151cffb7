"""``shards:///path``: raw row shards + record segments, published by an atomic manifest.

Layout: ``manifest.json`` (format version, generation, tables with rows per shard and an
xxh3-64 checksum per shard and per 1 MiB block, record segments) and ``data/`` files that
are never modified once published. A commit writes new files, fsyncs them, then renames a
new manifest into place, so a crash at any moment leaves the last committed state. A
reader maps every file of the manifest it opened, so it keeps a consistent snapshot while
a writer commits and collects old files.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from engram_sdk.stores.base import Store
from engram_sdk.stores.blocks import DISK_READ_THREADS, gather_by_block, parallel_take
from engram_sdk.stores.errors import StoreCorruptError, StoreError, StoreIOError
from engram_sdk.stores.lock import WriterLock, make_writable_dir
from engram_sdk.stores.manifest import (
    CHECK_BLOCK,
    decode_manifest,
    empty_manifest,
    encode_manifest,
)
from engram_sdk.stores.models import Problem, TableSpec, VerifyReport
from engram_sdk.stores.pending import Pending
from engram_sdk.stores.segments import RecordIndex, encode_segment

SHARD_BYTES = 64 << 20
MAX_SEGMENTS = 32


def checksums(data: Any) -> tuple[str, list[str]]:
    """xxh3-64 of the whole buffer and of each CHECK_BLOCK."""
    view = memoryview(data).cast("B")
    blocks = [
        xxhash.xxh3_64_hexdigest(view[i : i + CHECK_BLOCK])
        for i in range(0, len(view), CHECK_BLOCK)
    ]
    return xxhash.xxh3_64_hexdigest(view), blocks


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ShardStore(Store):
    """Sharded-files backend."""

    backend = "shards"

    def __init__(
        self,
        uri: str,
        mode: str,
        folder: Path,
        durable: bool = True,
        verify_reads: bool = True,
        random_access: bool = False,
    ) -> None:
        super().__init__(uri, mode, durable)
        self.folder = folder
        self.data_dir = folder / "data"
        self.verify_reads = verify_reads
        self.random_access = random_access  # no read-ahead: for tables read row by row from disk
        self._lock: WriterLock | None = None
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"{folder} is a file; a shards:// store is a folder", path=folder)
        if mode == "r":
            if not (folder / "manifest.json").is_file():
                raise StoreError(
                    f"no shards store here: {folder / 'manifest.json'} does not exist",
                    path=folder / "manifest.json",
                )
        else:
            make_writable_dir(self.data_dir)
            self._lock = self._writer = WriterLock(folder)
            self._lock.acquire()
        self._verified: set[str] = set()
        try:
            self._load_retrying(fresh=(mode == "w"))
            if self._lock is not None:
                self._collect_garbage()
        except BaseException:
            self._close()
            raise

    def _load_retrying(self, fresh: bool) -> None:
        for _attempt in range(5):  # a writer may collect files between manifest and open
            try:
                self._load(fresh)
                return
            except FileNotFoundError:
                continue
        try:
            self._load(fresh)
        except FileNotFoundError as exc:
            raise StoreCorruptError(
                f"{exc.filename}: file named by the manifest is missing", path=exc.filename
            ) from exc

    # ---- manifest --------------------------------------------------------------------------
    def _load(self, fresh: bool) -> None:
        path = self.folder / "manifest.json"
        if fresh:
            self.manifest: dict[str, Any] = empty_manifest()
            self._publish(self.manifest)
        elif not path.exists() and self.mode != "r":
            strays = [p.name for p in self.data_dir.iterdir()] if self.data_dir.is_dir() else []
            if strays:
                raise StoreCorruptError(
                    f"{path} is missing but {self.data_dir} holds {len(strays)} data files "
                    f"(e.g. {strays[0]}): refusing to open this as an empty store (nothing was "
                    f"deleted); restore the manifest, or open with mode 'w' to start over",
                    path=path,
                    expected="manifest.json",
                )
            self.manifest = empty_manifest()
            self._publish(self.manifest)
        else:
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                raise StoreCorruptError(f"{path} is missing", path=path) from None
            except OSError as exc:
                raise StoreIOError(f"cannot read {path}: {exc.strerror}", path=path) from exc
            self.manifest = decode_manifest(path, raw)
        self._maps: dict[str, np.memmap] = {}
        self._row_views: dict[tuple[str, Any, int], np.ndarray] = {}
        for table in self.manifest["tables"].values():
            for shard in table["shards"]:
                if shard is not None:
                    self._maps[shard["file"]] = self._map_shard(shard)
        self._index = RecordIndex()
        for seg in self.manifest["segments"]:
            self._index.add_segment(self.data_dir / seg["file"], self._map_segment(seg))

    def _map_shard(self, shard: dict[str, Any]) -> np.memmap:
        path = self.data_dir / shard["file"]
        size = path.stat().st_size  # FileNotFoundError: caller retries, then reports
        if size != shard["bytes"]:
            raise StoreCorruptError(
                f"{path} is truncated or overwritten: {size} bytes, expected {shard['bytes']} "
                f"(first missing byte at offset {min(size, shard['bytes'])})",
                path=path,
                offset=min(size, shard["bytes"]),
                expected=shard["bytes"],
            )
        if not size:
            return np.zeros(0, np.uint8)
        mapped = np.memmap(path, dtype=np.uint8, mode="r", shape=(size,))
        if self.random_access and hasattr(mmap, "MADV_RANDOM"):
            mapped._mmap.madvise(mmap.MADV_RANDOM)  # type: ignore[attr-defined]
        return mapped

    def _map_segment(self, seg: dict[str, Any]) -> mmap.mmap | bytes:
        path = self.data_dir / seg["file"]
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size != seg["bytes"]:
                raise StoreCorruptError(
                    f"{path} is truncated or overwritten: {size} bytes, expected {seg['bytes']}",
                    path=path,
                    offset=min(size, seg["bytes"]),
                    expected=seg["bytes"],
                )
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        if self.verify_reads and xxhash.xxh3_64_hexdigest(data) != seg["xxh3"]:
            raise StoreCorruptError(
                f"{path} fails its xxh3-64 checksum (record segment)",
                path=path,
                expected=seg["xxh3"],
            )
        return data

    def _publish(self, manifest: dict[str, Any]) -> None:
        path = self.folder / "manifest.json"
        tmp = self.folder / f".manifest.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(encode_manifest(manifest))
            fh.flush()
            if self.durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if self.durable:
            _fsync_dir(self.folder)

    def _write_file(self, name: str, data: Any) -> None:
        path = self.data_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            _write_all(fd, data)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _collect_garbage(self) -> None:
        live = {s["file"] for t in self.manifest["tables"].values() for s in t["shards"] if s}
        live |= {s["file"] for s in self.manifest["segments"]}
        for path in self.data_dir.iterdir():
            if path.name not in live and path.is_file():
                path.unlink()
        for path in self.folder.glob(".manifest.*.tmp"):
            path.unlink()

    # ---- primitives ----------------------------------------------------------------------
    def _specs(self) -> dict[str, TableSpec]:
        return {name: TableSpec(**t["spec"]) for name, t in self.manifest["tables"].items()}

    def _shard_rows(self, spec: TableSpec, table: dict[str, Any], s: int) -> np.ndarray | None:
        shard = table["shards"][s]
        if shard is None:
            return None
        raw = self._maps[shard["file"]]
        if self.verify_reads and shard["file"] not in self._verified:
            self._check_shard(shard, raw)
            self._verified.add(shard["file"])
        key = (shard["file"], spec.storage_dtype, spec.dim)
        rows = self._row_views.get(key)
        if rows is None:  # a plain ndarray view, made once: memmap views cost per call
            rows = raw.view(np.ndarray).view(spec.storage_dtype).reshape(-1, spec.dim)
            self._row_views[key] = rows
        return rows

    def _check_shard(self, shard: dict[str, Any], raw: np.ndarray) -> None:
        whole, blocks = checksums(raw)
        if whole != shard["xxh3"]:
            bad = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(blocks, shard["blocks"], strict=False))
                    if a != b
                ),
                0,
            )
            raise StoreCorruptError(
                f"{self.data_dir / shard['file']} fails its xxh3-64 checksum: corrupt bytes in "
                f"[{bad * CHECK_BLOCK}, {(bad + 1) * CHECK_BLOCK}) (offset {bad * CHECK_BLOCK})",
                path=self.data_dir / shard["file"],
                offset=bad * CHECK_BLOCK,
                expected=shard["xxh3"],
            )

    def _read_rows(self, spec: TableSpec, row_ids: np.ndarray, out: np.ndarray) -> None:
        table = self.manifest["tables"][spec.name]
        if len(table["shards"]) == 1 and not self.random_access:  # one shard: one take
            rows = self._shard_rows(spec, table, 0)
            if rows is None:
                out[:] = 0
            else:
                parallel_take(np.asarray(rows), row_ids, out)
            return
        gather_by_block(
            row_ids,
            table["rows_per_shard"],
            lambda s: self._shard_rows(spec, table, s),
            out,
            DISK_READ_THREADS if self.random_access else None,
        )

    def _get(self, ns: str, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self._index.get(ns, k) for k in keys]

    def _scan(self, ns: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self._index.scan(ns, prefix)

    def _count(self, ns: str, prefix: bytes) -> int:
        return self._index.count(ns, prefix)

    def _namespaces(self) -> list[str]:
        return list(self.manifest["namespaces"])

    def replace_all(self, pending: Pending) -> None:
        """Publish exactly ``pending``'s tables and records in one atomic commit."""
        self._check_writable()
        with self._write_lock:
            self._commit(pending, replace=True)

    def _commit(self, pending: Pending, replace: bool = False) -> None:
        manifest = json.loads(json.dumps(self.manifest))
        if replace:
            manifest.update(tables={}, segments=[], namespaces=[])
        gen = manifest["generation"] = manifest["generation"] + 1
        for name, spec in pending.new_tables.items():
            rps = max(1, SHARD_BYTES // spec.row_bytes)
            manifest["tables"][name] = {
                "spec": spec.model_dump(),
                "rows_per_shard": rps,
                "shards": [None] * (-(-spec.rows // rps)),
            }
        for name in pending.rows:
            table = manifest["tables"][name]
            spec = TableSpec(**table["spec"])
            rps = table["rows_per_shard"]
            ids, values = pending.final_rows(name)  # type: ignore[misc]
            shard_of = ids // rps
            cuts = np.flatnonzero(np.diff(shard_of)) + 1
            for idx in np.split(np.arange(len(ids)), cuts):
                s = int(shard_of[idx[0]])
                n = min(rps, spec.rows - s * rps)
                old = table["shards"][s]
                first, last = int(idx[0]), int(idx[-1])
                if len(idx) == n and ids[first] == s * rps and ids[last] == s * rps + n - 1:
                    rows = values[first : last + 1]  # the whole shard, in order: no copy
                else:
                    rows = (
                        np.zeros((n, spec.dim), spec.storage_dtype)
                        if old is None or name in pending.new_tables
                        else np.array(self._shard_rows(spec, table, s))
                    )
                    rows[ids[idx] - s * rps] = values[idx]
                fname = f"{name}.{s}.g{gen}.bin"
                self._write_file(fname, rows)
                whole, blocks = checksums(rows)
                table["shards"][s] = {
                    "file": fname,
                    "bytes": rows.nbytes,
                    "xxh3": whole,
                    "blocks": blocks,
                }
        if pending.records:
            records = pending.records
            if (
                len(manifest["segments"]) >= MAX_SEGMENTS and not replace
            ):  # compact into one segment
                merged = self._index.live()
                for ns, staged in records.items():
                    merged.setdefault(ns, {}).update(staged)
                records = {
                    ns: {k: v for k, v in m.items() if v is not None} for ns, m in merged.items()
                }
                manifest["segments"] = []
            data = encode_segment(records)
            fname = f"records.g{gen}.seg"
            self._write_file(fname, data)
            manifest["segments"].append(
                {"file": fname, "bytes": len(data), "xxh3": xxhash.xxh3_64_hexdigest(data)}
            )
            manifest["namespaces"] = sorted(set(manifest["namespaces"]) | set(pending.records))
        if self.durable:
            _fsync_dir(self.data_dir)
        self._publish(manifest)
        self.manifest = manifest
        self._load(fresh=False)
        self._collect_garbage()

    def _verify(self, report: VerifyReport) -> None:
        path = self.folder / "manifest.json"
        report.checked_files += 1
        try:
            raw = path.read_bytes()
            report.checked_bytes += len(raw)
            decode_manifest(path, raw)
        except OSError as exc:
            report.problems.append(Problem(file=str(path), message=f"unreadable: {exc.strerror}"))
        except StoreError as exc:
            report.problems.append(Problem(file=str(path), offset=exc.offset, message=str(exc)))
        for name, table in self.manifest["tables"].items():
            for s, shard in enumerate(table["shards"]):
                if shard is None:
                    continue
                path = self.data_dir / shard["file"]
                report.checked_files += 1
                try:
                    raw = self._map_shard(shard)
                    report.checked_bytes += raw.nbytes
                    self._check_shard(shard, raw)
                except FileNotFoundError:
                    report.problems.append(
                        Problem(file=str(path), message=f"missing shard {s} of table {name!r}")
                    )
                except StoreCorruptError as exc:
                    report.problems.append(
                        Problem(file=str(path), offset=exc.offset, message=str(exc))
                    )
        for seg in self.manifest["segments"]:
            path = self.data_dir / seg["file"]
            report.checked_files += 1
            try:
                data = path.read_bytes()
                report.checked_bytes += len(data)
                if len(data) != seg["bytes"] or xxhash.xxh3_64_hexdigest(data) != seg["xxh3"]:
                    report.problems.append(
                        Problem(file=str(path), message="record segment fails its checksum or size")
                    )
                else:
                    report.checked_records += sum(
                        len(v) for v in _replay(path, data).where.values()
                    )
            except FileNotFoundError:
                report.problems.append(Problem(file=str(path), message="missing record segment"))

    def _format_version(self) -> int:
        return int(self.manifest["format_version"])

    def _bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.data_dir.iterdir() if p.is_file())

    def _close(self) -> None:
        self._maps = {}
        self._row_views = {}
        if self._lock is not None:
            self._lock.release()


def _replay(path: Path, data: bytes) -> RecordIndex:
    index = RecordIndex()
    index.add_segment(path, data)
    return index


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view[: 1 << 30])
        view = view[n:]
