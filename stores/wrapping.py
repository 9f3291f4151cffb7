"""``WrappingStore``: a store in front of another one (a cache, a layout, a mapping).

Records, verification, format and size go to the wrapped store unchanged; a subclass says
how rows are read (and, if it is writable, how a transaction commits). Closing it closes
the wrapped store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from engram_sdk.stores.base import Store
from engram_sdk.stores.errors import StoreReadOnlyError
from engram_sdk.stores.models import VerifyReport
from engram_sdk.stores.pending import Pending


class WrappingStore(Store):
    """A :class:`Store` delegating everything but its rows to ``store``; read-only unless a
    subclass commits."""

    def __init__(self, store: Store, mode: str) -> None:
        super().__init__(store.uri, mode, store.durable)
        self.store = store
        self.backend = store.backend

    def _get(self, ns: str, keys: Sequence[bytes]) -> list[bytes | None]:
        return self.store.get_many(ns, keys)

    def _scan(self, ns: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.store.scan(ns, prefix)

    def _count(self, ns: str, prefix: bytes) -> int:
        return self.store.count(ns, prefix)

    def _namespaces(self) -> list[str]:
        return self.store.namespaces()

    def _commit(self, pending: Pending) -> None:
        raise StoreReadOnlyError(f"{self.uri}: a {type(self).__name__} is read-only", path=self.uri)

    def _verify(self, report: VerifyReport) -> None:
        inner = self.store.verify()
        report.checked_files, report.checked_bytes = inner.checked_files, inner.checked_bytes
        report.checked_records, report.problems = inner.checked_records, inner.problems

    def _format_version(self) -> int:
        return self.store._format_version()

    def _bytes_on_disk(self) -> int | None:
        return self.store._bytes_on_disk()

    def _close(self) -> None:
        self.store.close()
