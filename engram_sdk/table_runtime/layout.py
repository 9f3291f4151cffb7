"""Engram tables laid out by N-gram frequency, so rows read together share disk pages.

A hashed address spreads N-grams uniformly over the table, and the 8 heads of one N-gram
order sit in 8 separate head tables: read cold from disk, every 64-byte row costs a whole
4 KiB page. Counting which N-grams real text reads and moving their rows to the front of the
table, most frequent first and each N-gram's heads side by side
(:class:`~engram_sdk.stores.row_layout.RowLayout`), packs the rows most batches need into
few pages; lookups stay exact, since the layout is a permutation applied to the addresses
before the store is read.

    layouts = layouts_from_text(model, token_ids)           # counted on real text
    for layer, layout in layouts.items():
        save_layout(store, table_name(layer), layout, source="stdlib sample")
    served = LaidOutStore(store)                            # later, when serving:
    served.gather(table_name(layer), addresses)             # the original rows, laid-out reads
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from engram_sdk.errors import InputError
from engram_sdk.stores.row_layout import RowLayout

PAGE_BYTES = 4096


def layout_from_addresses(
    addresses: np.ndarray, rows: int, *, group: int = 1, max_hot: int | None = None
) -> RowLayout:
    """A frequency layout of a ``rows``-row table from addresses (..., heads) it served.

    ``group`` consecutive heads are read together for every token (the heads of one N-gram
    order): their rows are placed side by side, so one page serves them all. ``group=1``
    orders single rows by their own counts.
    """
    flat = np.asarray(addresses, dtype=np.int64)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= rows):
        raise InputError(f"addresses must be in [0, {rows}), got {flat.min()}..{flat.max()}")
    width = flat.shape[-1] if flat.ndim else 1
    if group < 1 or width % group:
        raise InputError(f"group {group} must divide the {width} heads of the addresses")
    return RowLayout.by_group_frequency(rows, flat.reshape(-1, group), max_hot=max_hot)


def text_addresses(
    model: Any, token_ids: Any, *, chunk_tokens: int = 1 << 16
) -> dict[int, np.ndarray]:
    """Addresses (T, heads) per Engram layer of ``model`` for ``token_ids`` (1-D, real text).

    The ids are hashed as the model hashes them (``model.engram_addresses``, on the host),
    in chunks that continue one another, so they are those of the text read as one sequence.
    """
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    if not len(ids):
        raise InputError("token_ids is empty: counting rows needs text")
    context = model.hasher.context
    parts: dict[int, list[np.ndarray]] = {}
    for start in range(0, len(ids), chunk_tokens):
        chunk = torch.from_numpy(ids[start : start + chunk_tokens])[None]
        prefix = None
        if start:
            prefix = model.canonical.cpu()[torch.from_numpy(ids[start - context : start])][None]
        with torch.no_grad():
            for layer, addresses in model.engram_addresses(chunk, prefix).items():
                found_rows = addresses.cpu().numpy()
                parts.setdefault(layer, []).append(found_rows.reshape(-1, found_rows.shape[-1]))
    return {layer: np.concatenate(found) for layer, found in parts.items()}


def count_rows(model: Any, token_ids: Any) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per Engram layer, the distinct rows ``token_ids`` (1-D, real text) read, ascending,
    and how many times each (what a hot-row cache is warmed with)."""
    return {
        layer: np.unique(found.reshape(-1), return_counts=True)
        for layer, found in text_addresses(model, token_ids).items()
    }


def layouts_from_text(
    model: Any, token_ids: np.ndarray, *, chunk_tokens: int = 1 << 16, max_hot: int | None = None
) -> dict[int, RowLayout]:
    """A frequency layout per Engram layer of ``model`` from ``token_ids`` (1-D, real text),
    hashed as :func:`text_addresses` does."""
    found = text_addresses(model, token_ids, chunk_tokens=chunk_tokens)
    tables = model.engram_tables()
    heads = model.config.engram_heads_per_ngram  # one order's heads: read together
    return {
        layer: layout_from_addresses(addresses, tables[layer].rows, group=heads, max_hot=max_hot)
        for layer, addresses in found.items()
    }


def pages_touched(slots: np.ndarray, row_bytes: int, page_bytes: int = PAGE_BYTES) -> int:
    """Distinct ``page_bytes`` pages holding the rows stored at ``slots``."""
    slots = np.unique(np.asarray(slots, dtype=np.int64))
    first = slots * row_bytes // page_bytes
    last = ((slots + 1) * row_bytes - 1) // page_bytes
    if np.array_equal(first, last):
        return len(np.unique(first))
    spans = [np.arange(f, e + 1) for f, e in zip(first.tolist(), last.tolist(), strict=True)]
    return len(np.unique(np.concatenate(spans)))
