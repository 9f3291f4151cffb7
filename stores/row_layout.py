"""Row layouts: a table's rows stored in another order, so that rows read together share pages.

A table stored row by row puts row ``i`` at byte ``i * row_bytes``. When the ids read
together are spread uniformly (hashed N-grams), every row costs its own 4 KiB page on a
cold read. A :class:`RowLayout` moves a set of ``hot`` ids (the most frequent ones, most
frequent first) to slots ``0 .. K-1``; the ids that held those slots take the hot ids'
old slots; every other id keeps its slot. It is a permutation, stored in O(K):

    slot(id) = rank of id in hot           if id is hot
             = vacated[k]                  if id < K is the k-th displaced id (ascending)
             = id                          otherwise

where ``vacated`` are the hot ids >= K, ascending. A laid-out copy of table ``T`` lives in
the same store as table ``T.by_frequency`` (a different name: a reader unaware of layouts
finds no table rather than misplaced rows), the hot ids as table ``T.by_frequency.ids``
(int64 bytes) and a :class:`LayoutInfo` record (format version, xxh3-64 checksum of the hot
ids) under namespace ``row_layout``, key ``T``; all three commit in one transaction.
"""

from __future__ import annotations

import numpy as np
import xxhash
from engram_sdk.stores.base import Store
from engram_sdk.stores.errors import InputError, StoreCorruptError, StoreVersionError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

LAYOUT_FORMAT_VERSION = 1
LAYOUT_NAMESPACE = "row_layout"
LAYOUT_SUFFIX = ".by_frequency"
IDS_SUFFIX = ".ids"
_ID_BYTES = 8  # hot ids are stored as little-endian int64 rows of 8 int8


class LayoutInfo(BaseModel):
    """What is kept with the store about one laid-out table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = LAYOUT_FORMAT_VERSION
    table: str = Field(description="the table whose rows are laid out")
    rows: int = Field(ge=0)
    hot_rows: int = Field(ge=0, description="ids moved to the front, most frequent first")
    checksum: str = Field(description="xxh3-64 hex digest of the hot ids (int64 little-endian)")
    source: str = Field("", description="what the frequencies were counted on")


def _hot_checksum(hot: np.ndarray) -> str:
    return xxhash.xxh3_64_hexdigest(np.ascontiguousarray(hot, dtype="<i8").tobytes())


class RowLayout:
    """A permutation of ``rows`` ids that puts ``hot`` ids first (see the module docstring)."""

    def __init__(self, rows: int, hot: np.ndarray) -> None:
        hot = np.asarray(hot)
        if hot.ndim != 1 or (hot.size and not np.issubdtype(hot.dtype, np.integer)):
            raise InputError(f"hot ids must be a 1-D integer array, got {hot.dtype} {hot.shape}")
        hot = hot.astype(np.int64)
        if hot.size and (int(hot.min()) < 0 or int(hot.max()) >= rows):
            raise InputError(f"hot ids must be in [0, {rows}), got {hot.min()}..{hot.max()}")
        if len(np.unique(hot)) != len(hot):
            raise InputError("hot ids must be distinct")
        self.rows, self.hot = rows, hot
        k = len(hot)
        order = np.argsort(hot, kind="stable")
        self._hot_sorted, self._hot_rank = hot[order], order.astype(np.int64)
        low = np.zeros(k, dtype=bool)
        low[hot[hot < k]] = True
        self._displaced = np.flatnonzero(~low).astype(np.int64)  # ids < K that are not hot
        self._vacated = np.sort(hot[hot >= k])  # the slots they take

    @classmethod
    def by_frequency(
        cls, rows: int, ids: np.ndarray, counts: np.ndarray, *, max_hot: int | None = None
    ) -> RowLayout:
        """Hot ids = ``ids`` with a count, most counted first (ties: lower id first)."""
        ids, counts = np.asarray(ids, dtype=np.int64), np.asarray(counts)
        if ids.shape != counts.shape:
            raise InputError(f"ids {ids.shape} and counts {counts.shape} must match")
        keep = counts > 0
        ids, counts = ids[keep], counts[keep]
        order = np.lexsort((ids, -counts))
        return cls(rows, ids[order][:max_hot])

    @classmethod
    def by_group_frequency(
        cls, rows: int, groups: np.ndarray, *, max_hot: int | None = None
    ) -> RowLayout:
        """Hot ids from ``groups`` (N, k): ids always read together (an N-gram's rows in the
        k heads of one order), kept side by side, the most frequent groups first (ties: the
        group seen first).

        Each id keeps the place of its first group. With k = 1 this is :meth:`by_frequency`.
        """
        groups = np.ascontiguousarray(groups, dtype=np.int64)
        if groups.ndim != 2 or not groups.shape[1]:
            raise InputError(f"groups must be (N, k) with k >= 1, got shape {groups.shape}")
        whole = groups.view(np.dtype((np.void, 8 * groups.shape[1]))).reshape(-1)
        _, first, counts = np.unique(whole, return_index=True, return_counts=True)
        order = np.lexsort((first, -counts))
        hot = groups[first[order]].reshape(-1)
        _, where = np.unique(hot, return_index=True)  # an id in two groups: its first place
        return cls(rows, hot[np.sort(where)][:max_hot])

    @property
    def hot_rows(self) -> int:
        """How many ids were moved to the front."""
        return len(self.hot)

    def slots(self, ids: np.ndarray) -> np.ndarray:
        """Where each id's row is stored (int64, same shape)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = ids.copy()
        if not len(self.hot):
            return out
        flat, res = ids.reshape(-1), out.reshape(-1)
        pos = np.searchsorted(self._hot_sorted, flat).clip(max=len(self.hot) - 1)
        is_hot = self._hot_sorted[pos] == flat
        res[is_hot] = self._hot_rank[pos[is_hot]]
        low = ~is_hot & (flat < len(self.hot))
        if low.any():
            res[low] = self._vacated[np.searchsorted(self._displaced, flat[low])]
        return out

    def ids(self, slots: np.ndarray) -> np.ndarray:
        """Which id's row each slot holds (the inverse of :meth:`slots`)."""
        slots = np.asarray(slots, dtype=np.int64)
        out = slots.copy()
        if not len(self.hot):
            return out
        flat, res = slots.reshape(-1), out.reshape(-1)
        front = flat < len(self.hot)
        res[front] = self.hot[flat[front]]
        pos = np.searchsorted(self._vacated, flat).clip(max=max(len(self._vacated) - 1, 0))
        moved = ~front & (len(self._vacated) > 0)
        if len(self._vacated):
            moved &= self._vacated[pos] == flat
            res[moved] = self._displaced[pos[moved]]
        return out


def laid_out_name(table: str) -> str:
    """The table holding ``table``'s rows in layout order."""
    return table + LAYOUT_SUFFIX


def save_layout(
    store: Store,
    table: str,
    layout: RowLayout,
    *,
    into: Store | None = None,
    source: str = "",
    chunk_rows: int = 1 << 20,
) -> LayoutInfo:
    """Write ``table``'s rows in ``layout`` order as ``table.by_frequency``, with the layout.

    The rows are read from ``store`` and written to ``into`` (default: the same store; another
    store leaves out the original order and its bytes). One transaction of ``into``: the
    laid-out rows, the hot ids and the :class:`LayoutInfo` record appear together or not at
    all. Rows are copied ``chunk_rows`` at a time.
    """
    into = store if into is None else into
    spec = store.table(table)
    if spec.rows != layout.rows:
        raise InputError(f"layout is for {layout.rows} rows; table {table!r} has {spec.rows}")
    name = laid_out_name(table)
    info = LayoutInfo(
        table=table,
        rows=spec.rows,
        hot_rows=layout.hot_rows,
        checksum=_hot_checksum(layout.hot),
        source=source,
    )
    with into.transaction():
        into.create_table(name, spec.rows, spec.dim, spec.dtype)
        for start in range(0, spec.rows, chunk_rows):
            slots = np.arange(start, min(spec.rows, start + chunk_rows), dtype=np.int64)
            into.scatter(name, slots, store.gather(table, layout.ids(slots)))
        into.create_table(name + IDS_SUFFIX, layout.hot_rows, _ID_BYTES, "int8")
        if layout.hot_rows:
            hot_bytes = np.ascontiguousarray(layout.hot, dtype="<i8").view(np.int8)
            into.scatter(
                name + IDS_SUFFIX, np.arange(layout.hot_rows), hot_bytes.reshape(-1, _ID_BYTES)
            )
        into.put(LAYOUT_NAMESPACE, table.encode(), info.model_dump_json().encode())
    return info


def load_layout(store: Store, table: str) -> RowLayout | None:
    """The layout kept for ``table`` (None if it has none), checked against its checksum."""
    raw = store.get(LAYOUT_NAMESPACE, table.encode())
    if raw is None:
        return None
    where = f"{store.uri} {LAYOUT_NAMESPACE}/{table}"
    try:
        info = LayoutInfo.model_validate_json(raw)
    except ValidationError as exc:
        version = _version_of(raw)
        if version is not None and version > LAYOUT_FORMAT_VERSION:
            raise StoreVersionError(
                f"{where}: row layout format {version} is newer than this engram-sdk "
                f"({LAYOUT_FORMAT_VERSION}); upgrade engram-sdk",
                path=store.uri,
                expected=LAYOUT_FORMAT_VERSION,
            ) from exc
        raise StoreCorruptError(
            f"{where}: unreadable row layout record: {exc}", path=store.uri
        ) from exc
    if info.format_version > LAYOUT_FORMAT_VERSION:
        raise StoreVersionError(
            f"{where}: row layout format {info.format_version} is newer than this engram-sdk "
            f"({LAYOUT_FORMAT_VERSION}); upgrade engram-sdk",
            path=store.uri,
            expected=LAYOUT_FORMAT_VERSION,
        )
    ids_table = laid_out_name(table) + IDS_SUFFIX
    if ids_table not in store.tables() or laid_out_name(table) not in store.tables():
        raise StoreCorruptError(f"{where}: the laid-out tables are missing", path=store.uri)
    raw_ids = store.gather(ids_table, np.arange(store.table(ids_table).rows))
    hot = np.ascontiguousarray(raw_ids).view("<i8").reshape(-1).astype(np.int64)
    if len(hot) != info.hot_rows or _hot_checksum(hot) != info.checksum:
        raise StoreCorruptError(
            f"{where}: hot ids do not match the layout's checksum",
            path=store.uri,
            expected=info.checksum,
        )
    try:
        return RowLayout(info.rows, hot)
    except InputError as exc:
        raise StoreCorruptError(f"{where}: {exc}", path=store.uri) from exc


def _version_of(raw: bytes) -> int | None:
    import json

    try:
        version = json.loads(raw).get("format_version")
    except (ValueError, AttributeError):
        return None
    return version if isinstance(version, int) else None
