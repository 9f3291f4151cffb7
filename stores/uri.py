"""``open_store(uri, mode)``: the one way to open a store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from engram_sdk.stores.base import Store
from engram_sdk.stores.errors import InputError

SCHEMES = ("dram", "lmdb", "shards")


def parse_uri(uri: str) -> tuple[str, Path | None]:
    """Scheme and folder of a store URI (``dram://`` has no folder)."""
    if not isinstance(uri, str) or "://" not in uri:
        raise InputError(
            f"store URI {uri!r} must look like dram://, lmdb:///path or shards:///path"
        )
    parsed = urlparse(uri)
    scheme = parsed.scheme
    if scheme not in SCHEMES:
        raise InputError(f"unknown store scheme {scheme!r} in {uri!r}; expected one of {SCHEMES}")
    raw = unquote(parsed.netloc + parsed.path)
    if "\x00" in raw:
        raise InputError(f"store URI {uri!r} contains a NUL byte")
    if not raw:
        if scheme == "dram":
            return scheme, None
        raise InputError(f"{scheme}:// needs a folder, e.g. {scheme}:///data/store")
    return scheme, Path(raw).expanduser().absolute()


def open_store(
    uri: str,
    mode: str = "a",
    *,
    durable: bool = True,
    cache_rows: int = 0,
    pinned: bool = False,
    verify_reads: bool = True,
    random_access: bool = False,
) -> Store:
    """Open a store: ``mode`` is ``"r"`` (read), ``"w"`` (create or truncate) or ``"a"`` (open or create).

    Options a backend cannot honour raise :class:`InputError`.
    ``durable=False`` skips fsync at commit (faster; a crash may lose the last commits, never
    corrupt earlier ones). ``cache_rows`` puts a hot-row DRAM cache of that many rows in
    front of a file backend; ``pinned`` keeps ``dram://`` tables in pinned memory.
    ``shards://`` only: ``verify_reads=False`` skips checking each shard's checksum on its
    first read (which reads the whole shard: costly for a big table read row by row from
    disk; ``engram store verify`` still checks everything), and ``random_access`` turns off
    read-ahead for such reads.
    """
    scheme, folder = parse_uri(uri)
    if pinned and scheme != "dram":
        raise InputError(f"pinned=True applies to dram:// stores only, not {uri!r}")
    for name, value, default in (
        ("verify_reads", verify_reads, True),
        ("random_access", random_access, False),
    ):
        if scheme != "shards" and value != default:
            raise InputError(f"{name}={value} applies to shards:// stores only, not {uri!r}")
    if scheme == "dram":
        from engram_sdk.stores.dram import DramStore

        store: Store = DramStore(uri, mode, durable, folder=folder, pinned=pinned)
    elif scheme == "lmdb":
        from engram_sdk.stores.lmdb_store import LmdbStore

        store = LmdbStore(uri, mode, folder, durable)  # type: ignore[arg-type]
    else:
        from engram_sdk.stores.shards import ShardStore

        store = ShardStore(uri, mode, folder, durable, verify_reads, random_access)  # type: ignore[arg-type]
    if cache_rows:
        from engram_sdk.stores.cache import CachedStore

        store = CachedStore(store, cache_rows)
    return store
