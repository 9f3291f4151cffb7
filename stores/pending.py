"""Writes staged by a transaction, applied by a backend in one atomic commit."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from engram_sdk.stores.models import TableSpec


@dataclass
class Pending:
    """Everything a transaction wrote, in order; reads inside it see these first."""

    new_tables: dict[str, TableSpec] = field(default_factory=dict)
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    records: dict[str, dict[bytes, bytes | None]] = field(default_factory=dict)  # None: deleted

    def empty(self) -> bool:
        """True when nothing was written."""
        return not (self.new_tables or self.rows or self.records)

    def savepoint(self) -> tuple[set[str], dict[str, int], dict[str, dict[bytes, bytes | None]]]:
        """A mark to roll back to: what is staged now (record maps are copied)."""
        return (
            set(self.new_tables),
            {name: len(writes) for name, writes in self.rows.items()},
            {ns: dict(staged) for ns, staged in self.records.items()},
        )

    def rollback_to(
        self, mark: tuple[set[str], dict[str, int], dict[str, dict[bytes, bytes | None]]]
    ) -> None:
        """Undo everything staged after ``mark`` was taken."""
        tables, row_counts, records = mark
        for name in set(self.new_tables) - tables:
            del self.new_tables[name]
        for name in list(self.rows):
            keep = row_counts.get(name, 0)
            if keep:
                del self.rows[name][keep:]
            else:
                del self.rows[name]
        self.records = records

    def scatter(self, table: str, ids: np.ndarray, values: np.ndarray) -> None:
        """Stage rows (copies, so the caller may reuse its buffers)."""
        self.rows.setdefault(table, []).append((ids.copy(), values.copy()))

    def final_rows(self, table: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Unique ids and their last written values for ``table``."""
        writes = self.rows.get(table)
        if not writes:
            return None
        parts = [w for w in writes if len(w[0])] or writes[:1]
        if all(_increasing(w[0]) for w in parts) and all(
            a[0][-1] < b[0][0] for a, b in itertools.pairwise(parts)
        ):  # writes of increasing ids, each after the last (bulk loads, copies): already final
            if len(parts) == 1:
                return parts[0]
            return np.concatenate([w[0] for w in parts]), np.concatenate([w[1] for w in parts])
        ids = np.concatenate([w[0] for w in writes])
        values = np.concatenate([w[1] for w in writes])
        # the last write of each id wins
        rev_unique, rev_first = np.unique(ids[::-1], return_index=True)
        return rev_unique, values[::-1][rev_first]

    def overlay_rows(self, table: str, row_ids: np.ndarray, out: np.ndarray) -> None:
        """Overwrite ``out`` rows whose ids this transaction wrote."""
        final = self.final_rows(table)
        if final is None:
            return
        ids, values = final
        pos = np.searchsorted(ids, row_ids)
        pos = np.minimum(pos, len(ids) - 1)
        hit = ids[pos] == row_ids
        out[hit] = values[pos[hit]]

    def overlay_scan(
        self, ns: str, prefix: bytes, committed: Iterator[tuple[bytes, bytes]]
    ) -> Iterator[tuple[bytes, bytes]]:
        """Merge committed records with this transaction's, in key order."""
        staged = self.records.get(ns)
        if not staged:
            yield from committed
            return
        mine = sorted((k, v) for k, v in staged.items() if k.startswith(prefix))
        i = 0
        for key, value in committed:
            while i < len(mine) and mine[i][0] < key:
                if mine[i][1] is not None:
                    yield mine[i]  # type: ignore[misc]
                i += 1
            if i < len(mine) and mine[i][0] == key:
                if mine[i][1] is not None:
                    yield mine[i]  # type: ignore[misc]
                i += 1
                continue
            yield key, value
        for k, v in mine[i:]:
            if v is not None:
                yield k, v


def _increasing(ids: np.ndarray) -> bool:
    return bool(np.all(ids[1:] > ids[:-1]))
