"""``attach_tables(model, store)``: a model's Engram rows served from a store, from outside.

As torchtitan applies parallelism, the runtime is applied to a built model and the model
never knows: each Engram layer's table is swapped for a :class:`StoreTable` (an
``nn.Module``, so the layer just looks rows up in it), and stepping through the
:class:`TableRuntime` instead of the model adds what a store needs: every layer's fetch
starts before the forward (host ids hashed off the launching thread), precomputed
addresses go into ``model(ids, cache, addresses=...)``, and the next step's rows load while
this one computes (:meth:`TableRuntime.prefetch`). ``detach()`` puts the model's own tables
back. Calling the model directly still works (each lookup then fetches its rows itself).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import torch

from engram_sdk.engram.table import EngramTable
from engram_sdk.errors import InputError
from engram_sdk.model.transformer import ModelCache, Transformer
from engram_sdk.stores import CachedStore, open_store
from engram_sdk.stores.base import Store
from engram_sdk.table_runtime.addresses import HostHasher
from engram_sdk.table_runtime.export import export_tables, table_name
from engram_sdk.table_runtime.fetch import FETCH_THREADS, PREFETCH_THREADS
from engram_sdk.table_runtime.layout import count_rows
from engram_sdk.table_runtime.stats import TableStats
from engram_sdk.table_runtime.store_table import StoreTable
from engram_sdk.table_runtime.train import StoreTableOptimizer, TrainableStoreTable


class TableRuntime:
    """Steps a model whose Engram tables live in a store (made by :func:`attach_tables`).

    ``runtime(ids, cache)`` returns the model's logits, bitwise equal to the model with its
    tables in memory. Not thread-safe: one caller steps the model.
    """

    def __init__(
        self,
        model: Transformer,
        store: Store,
        tables: dict[int, StoreTable],
        *,
        stats: TableStats,
        device: torch.device,
        owns_store: bool,
    ) -> None:
        self.model, self.store, self.tables, self.device = model, store, tables, device
        self._stats, self._owns_store = stats, owns_store
        self._previous: dict[int, EngramTable] = model.engram_tables()
        self._hasher = HostHasher(model, device)
        self._attached = True
        for layer, table in tables.items():
            model.set_engram_table(layer, table)

    @property
    def stats(self) -> TableStats:
        """Rows requested and read, bytes moved, time fetching and waiting (all tables)."""
        return self._stats

    def __call__(self, input_ids: torch.Tensor, cache: ModelCache | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) for ``input_ids`` (B, T), continuing ``cache`` if given.

        Ids on the host (what generation and data loaders give) are hashed off this thread;
        ids on the device are hashed here and their addresses copied back without waiting.
        When every table's rows are read in place by the GPU (pinned, at most
        ``direct_tokens`` tokens), host ids are hashed on the device too, and the rows start
        loading at once, beside the layers before the first Engram layer.
        """
        start = time.perf_counter()
        self._check_attached()
        self.model.check_input(input_ids, cache)
        addresses = None
        if input_ids.device.type == "cpu" and not self._in_place(input_ids.numel()):
            batch = self._hasher.batch(input_ids, self._host_prefix(cache))
            for layer, table in self.tables.items():
                table.prepare(batch.layer(layer))
            if self.device.type == "cpu":
                addresses = batch.result()  # hashed once, for the tables and the model
        else:
            prefix = cache.last_ids if cache is not None else None
            on_device = input_ids.to(self.device, non_blocking=True)
            addresses = self.model.engram_addresses(on_device, prefix)
            for layer, table in self.tables.items():
                table.prepare(addresses[layer])
        self._stats.add(prepare_seconds=time.perf_counter() - start, prepared_steps=1)
        logits = self.model(input_ids, cache, addresses=addresses)
        for table in self.tables.values():  # the forward is launched: prefetches may start
            table.start_prefetches()
        return logits

    def _in_place(self, tokens: int) -> bool:
        """Whether every table's rows for a step of ``tokens`` are read by the GPU in place."""
        return self.device.type == "cuda" and all(
            table.reads_in_place(tokens) for table in self.tables.values()
        )

    @staticmethod
    def _host_prefix(cache: ModelCache | None) -> torch.Tensor | None:
        """The cache's Engram prefix on the host (copied back once if only the device has it)."""
        if cache is None or cache.last_ids is None:
            return None
        if cache.last_host_ids is None:  # earlier steps came from the device
            return cache.last_ids.cpu()
        return cache.last_host_ids

    def prefetch(self, next_ids: torch.Tensor) -> None:
        """Start fetching the rows of the step after the current one (call before it).

        Host ids are hashed once, on a fetch thread: the runtime remembers the batch, so the
        step that runs it recognises the prefetch. Prefetches start once this step's forward
        is launched (or its first table has its rows), two steps ahead at most.
        """
        self._check_attached()
        if self._in_place(next_ids.numel()):  # read in place when its step comes: nothing to do
            return
        if next_ids.device.type == "cpu":
            batch = self._hasher.batch(next_ids, remember=True)
            for layer, table in self.tables.items():
                table.prefetch(batch.layer(layer))
            return
        addresses = self.model.engram_addresses(next_ids)
        for layer, table in self.tables.items():
            table.prefetch(addresses[layer])

    def warm_hot_rows(self, token_ids: Any, *, limit: int | None = None) -> dict[int, int]:
        """Fill every table's hot-row cache (``attach_tables(hot_rows=N)``) with the rows
        ``token_ids`` (1-D, sample text, host ids) read most often; ``limit``: at most that
        many rows per table (default: the capacity, leaving no room for the cache to learn).
        Returns the rows admitted per Engram layer."""
        self._check_attached()
        ids = torch.as_tensor(token_ids)
        if ids.dim() != 1 or ids.dtype.is_floating_point:
            raise InputError(
                f"token_ids must be 1-D integer ids, got {ids.dtype} {tuple(ids.shape)}"
            )
        counted = count_rows(self.model, ids)
        out = {}
        for layer, table in self.tables.items():
            if table.hot is None:
                raise InputError("warm_hot_rows needs hot-row caches: attach_tables(hot_rows=N)")
            rows, counts = counted[layer]
            out[layer] = table.warm_hot_rows(rows, counts, limit=limit)
        return out

    def wait(self) -> None:
        """Block until every started prefetch has gathered its rows (copies queued).

        For timing a fixed amount of work, or before the process does something the fetch
        threads should not compete with; steps wait for their own rows otherwise.
        """
        for table in self.tables.values():
            table.wait_prefetches()

    def optimizer(
        self, *, lr: float = 0.01, kind: str = "adagrad", eps: float = 1e-8
    ) -> StoreTableOptimizer:
        """Row-wise updates of the store's rows (tables attached with ``trainable=True``)."""
        return StoreTableOptimizer(self.tables, lr=lr, kind=kind, eps=eps)

    def detach(self) -> None:
        """Finish every fetch, give the model back its own tables, close a store opened here.

        Rows trained in the store stay there; the model's own tables are as they were.
        """
        if not self._attached:
            return
        for table in self.tables.values():
            table.prefetched_rows()  # no fetch thread still reads the store
        for layer, table in self._previous.items():
            self.model.set_engram_table(layer, table)
        self._attached = False
        if self._owns_store:
            self.store.close()

    def _check_attached(self) -> None:
        if not self._attached:
            raise InputError("this table runtime was detached; attach_tables(model, ...) again")

    def __enter__(self) -> TableRuntime:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.detach()


def attach_tables(
    model: Transformer,
    store: str | Store,
    *,
    export: bool = True,
    trainable: bool = False,
    cache_rows: int = 0,
    hot_rows: int = 0,
    in_place_kernel: str = "auto",
    device: str | torch.device | None = None,
    dedup: bool | None = None,
    direct_tokens: int | None = None,
    fetch_threads: int = FETCH_THREADS,
    prefetch_threads: int = PREFETCH_THREADS,
) -> TableRuntime:
    """Serve every Engram layer of ``model`` from ``store`` (a URI or an open store).

    ``export``: write the model's in-memory tables there first (table ``engram.layer<N>``
    per layer); otherwise the store must hold them already, of the right shape.
    ``trainable``: looked-up rows receive gradients and :meth:`TableRuntime.optimizer`
    updates them in the store. ``cache_rows``: a host-memory cache in front of the store;
    ``hot_rows``: a per-table cache of that many of the most frequent rows on ``device``
    (:class:`~engram_sdk.table_runtime.hot_cache.HotRowCache`; rows stay bitwise the store's),
    used by fetches and by rows read in place (:meth:`TableRuntime.warm_hot_rows` fills it
    from sample text); ``in_place_kernel``: how rows read in place are gathered ("auto",
    "triton" or "torch", see :class:`StoreTable`).
    ``device``: where rows go (default: the model's). A ``dram://`` store opened here for a
    CUDA model keeps its rows in pinned memory, which the GPU reads in place for steps of at
    most ``direct_tokens`` tokens (default: the store's ``in_place_tokens``, 64: decoding).
    ``dedup`` reads each distinct row once (default: for file stores, not ``dram://``).
    Fetches run with ``fetch_threads`` torch threads, prefetches with ``prefetch_threads``.
    """
    device = torch.device(device or next(model.parameters()).device)
    for label, value in (("fetch_threads", fetch_threads), ("prefetch_threads", prefetch_threads)):
        if value < 1:
            raise InputError(f"{label} must be at least 1, got {value}")
    owns_store = isinstance(store, str)
    if isinstance(store, str):
        pinned = device.type == "cuda" and store.startswith("dram://")
        store = open_store(store, "a" if export else "r", pinned=pinned)
    if direct_tokens is None:
        direct_tokens = store.in_place_tokens
    try:
        if export:
            export_tables(model, store)
        if cache_rows:
            store = CachedStore(store, cache_rows)
        stats = TableStats()
        kind = TrainableStoreTable if trainable else StoreTable
        tables = {
            layer: kind(
                store,
                table_name(layer),
                device,
                stats,
                dedup=dedup,
                direct_tokens=direct_tokens,
                fetch_threads=fetch_threads,
                prefetch_threads=prefetch_threads,
                hot_rows=hot_rows,
                in_place_kernel=in_place_kernel,
            )
            for layer in model.engram_tables()
        }
    except BaseException:
        if owns_store:
            store.close()
        raise
    return TableRuntime(model, store, tables, stats=stats, device=device, owns_store=owns_store)
