"""``StoreTable``: an Engram table served from any store, fetched before it is needed.

The runtime (:class:`~engram_sdk.table_runtime.TableRuntime`) calls ``prepare(addresses)``
for every Engram layer before the model's forward starts; the table hands the fetch to the
shared worker pool. Host ids come unhashed (a :class:`LayerAddresses`): a CUDA model hashes
them on a side stream and the worker waits for the addresses to come back (a CPU model's
worker hashes them itself), so the thread launching the model's kernels neither hashes nor
waits. The worker deduplicates the addresses (file-backed stores; an in-memory table
gathers every requested row, which is cheaper than sorting them), gathers the rows from the
store into a pinned host buffer, copies them to the device on a side CUDA stream and
records an event. ``lookup`` (called by the Engram layer) waits only for that layer's
event, then (after deduplication) expands the unique rows back to (B, T, H, D) on the
compute stream; a lookup nobody prepared fetches its rows there and then.
``prefetch(addresses)`` starts the fetch for a later step, so batch k+1's rows load while
batch k computes (two staging slots per table).

Tables served this way are frozen; :mod:`engram_sdk.table_runtime.train` trains them in the
store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engram_sdk.errors import InputError
from engram_sdk.stores.base import Store
from engram_sdk.table_runtime.addresses import LayerAddresses
from engram_sdk.table_runtime.fetch import (
    FETCH_THREADS,
    PREFETCH_THREADS,
    Fetch,
    FetchedRows,
)
from engram_sdk.table_runtime.hot_cache import HotRowCache
from engram_sdk.table_runtime.hot_gather import gather_in_place, triton_available
from engram_sdk.table_runtime.mapped import mapped_view
from engram_sdk.table_runtime.staged import StagedRows
from engram_sdk.table_runtime.stats import TableStats


@dataclass
class EarlyRows:
    """Rows the GPU is gathering in place on a table's stream, for ``addresses``."""

    addresses: torch.Tensor
    rows: torch.Tensor  # (n, dim) on the device, written by the table's stream

    def matches(self, addresses: torch.Tensor) -> bool:
        """The same addresses (the tensor prepared, or a view of its memory): no device read."""
        return (
            addresses.shape == self.addresses.shape
            and addresses.data_ptr() == self.addresses.data_ptr()
            and addresses.stride() == self.addresses.stride()
        )


class StoreTable(nn.Module):
    """Engram rows of one layer read from ``store`` table ``name`` (see the module docstring).

    ``dedup`` reads each distinct row once; the default is on for file-backed stores and off
    for ``dram://``, where gathering duplicates costs less than finding them. When the rows
    sit in pinned host memory (``dram://`` opened with ``pinned=True``) and a step has at most
    ``direct_tokens`` tokens (decoding), the GPU reads the rows in place instead: one kernel,
    no host round trip; other stores fetch such small steps on the calling thread, since
    handing a few rows to a worker costs more (it waits for the interpreter lock) than
    reading them. Fetches the step waits for run with ``fetch_threads`` torch threads,
    prefetches for later steps with ``prefetch_threads`` (the same share by default; fewer
    leave more of the host to the model's thread, at the risk of the next step waiting).

    ``hot_rows``: a :class:`HotRowCache` of that many rows on the device, in the fetch path
    and for rows read in place (hits from the GPU, only misses over PCIe:
    :mod:`~engram_sdk.table_runtime.hot_gather`). ``in_place_kernel``: how rows read in place
    are gathered: "auto" (a Triton kernel when a hot cache is attached, else
    ``index_select``), "triton" or "torch".
    """

    def __init__(
        self,
        store: Store,
        name: str,
        device: str | torch.device = "cpu",
        stats: TableStats | None = None,
        *,
        dedup: bool | None = None,
        direct_tokens: int = 64,
        fetch_threads: int = FETCH_THREADS,
        prefetch_threads: int = PREFETCH_THREADS,
        hot_rows: int = 0,
        in_place_kernel: str = "auto",
    ) -> None:
        super().__init__()
        spec = store.table(name)
        self.store, self.name, self.spec = store, name, spec
        self.rows, self.dim = spec.rows, spec.dim
        self.device = torch.device(device)
        self.dtype = spec.torch_dtype()
        self.stats = stats if stats is not None else TableStats()
        self.dedup = dedup if dedup is not None else store.backend != "dram"
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.direct_tokens = direct_tokens
        for label, value in (
            ("fetch_threads", fetch_threads),
            ("prefetch_threads", prefetch_threads),
        ):
            if value < 1:
                raise InputError(f"{label} must be at least 1, got {value}")
        self.fetch_threads, self.prefetch_threads = fetch_threads, prefetch_threads
        if not isinstance(hot_rows, int) or hot_rows < 0:
            raise InputError(f"hot_rows must be an int >= 0, got {hot_rows!r}")
        self.hot = (
            HotRowCache(
                hot_rows, table_rows=self.rows, dim=self.dim, dtype=self.dtype, device=self.device
            )
            if hot_rows
            else None
        )
        if in_place_kernel not in ("auto", "triton", "torch"):
            raise InputError(
                f"in_place_kernel must be 'auto', 'triton' or 'torch', got {in_place_kernel!r}"
            )
        if in_place_kernel == "triton" and not triton_available():
            raise InputError("in_place_kernel='triton' needs Triton installed")
        if in_place_kernel == "auto":
            wants = self.hot is not None and self.cuda and triton_available()
            in_place_kernel = "triton" if wants else "torch"
        self.in_place_kernel = in_place_kernel
        # (hits, rows) of the rows read in place, counted on the device
        self._in_place_counts = (
            torch.zeros(2, dtype=torch.int64, device=self.device) if self.hot is not None else None
        )
        self._current: Fetch | None = None
        self._direct = False  # the next lookup reads pinned host rows in place
        self._early: EarlyRows | None = None  # those rows, already loading (prepare)
        self._next: list[Fetch] = []  # prefetches for later steps (two staging slots)
        self._pinned: Any = None  # the store's pinned array behind self._mapped
        self._mapped: torch.Tensor | None = None
        self._staged: StagedRows | None = None  # rows the host stages for recorded steps

    def _mapped_rows(self) -> torch.Tensor | None:
        """A device view of the store's pinned rows, refreshed if the store replaced them."""
        if not self.cuda:
            return None
        rows = self.store.pinned_rows(self.name)
        if rows is not self._pinned:
            self._pinned, self._mapped = rows, mapped_view(rows, self.spec.dtype, self.device)
        return self._mapped

    def stage_rows(self, flat_addresses: torch.Tensor) -> None:
        """Gather the rows of host ``flat_addresses`` into a fixed pinned buffer; until
        :meth:`end_staging`, ``prepare`` fetches nothing and ``lookup`` returns these rows,
        copied by the GPU from the buffer (what a recorded decode step replays)."""
        flat = flat_addresses.reshape(-1).to(torch.int64).numpy()
        if len(flat) and (int(flat.min()) < 0 or int(flat.max()) >= self.rows):
            raise InputError(f"Engram addresses outside table {self.name!r} of {self.rows} rows")
        if self._staged is None:
            self._staged = StagedRows(len(flat), self.dim, self.dtype, self.spec.dtype, self.device)
        self._staged.fill(self.store, self.name, flat)
        self.stats.add(
            rows_requested=len(flat),
            unique_rows=len(flat),
            bytes_moved=len(flat) * self.dim * self._staged.host.element_size(),
            fetches=1,
        )

    def end_staging(self) -> None:
        """Lookups fetch their rows again (see :meth:`stage_rows`)."""
        self._staged = None

    def reads_in_place(self, tokens: int) -> bool:
        """Whether a step of ``tokens`` token positions has the GPU read its rows in place
        (pinned host rows, at most ``direct_tokens`` tokens): pure device work."""
        return tokens <= self.direct_tokens and self._mapped_rows() is not None

    # ---- the worker's side ----------------------------------------------------------------
    def _host_ids(self, addresses: torch.Tensor | LayerAddresses, ready: Any) -> torch.Tensor:
        if isinstance(addresses, LayerAddresses):
            addresses = addresses.result()
        if ready is not None:  # a device-to-host copy started by prepare()
            ready.synchronize()
        flat = addresses.reshape(-1)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.rows):
            raise InputError(f"Engram addresses outside table {self.name!r} of {self.rows} rows")
        return flat.to(torch.int64)

    def _fetch(self, addresses: torch.Tensor | LayerAddresses, ready: Any = None) -> FetchedRows:
        start = time.perf_counter()
        flat = self._host_ids(addresses, ready)
        inverse = None
        ids = flat
        if self.dedup or self.hot is not None:  # the hot cache takes distinct ids
            ids, inverse = torch.unique(flat, return_inverse=True)
        if self.hot is None:
            staging = self._stage(ids.numpy())
        with torch.cuda.stream(self.stream) if self.cuda else contextlib.nullcontext():
            if self.hot is not None:
                staged: list[torch.Tensor] = []
                rows = self.hot.gather(ids.numpy(), lambda missing: self._stage(missing, staged))
                staging = staged[0] if staged else self._stage(ids.numpy()[:0])
            else:
                rows = staging.to(self.device, non_blocking=True) if self.cuda else staging
            event = None
            if self.cuda:
                if inverse is not None:
                    inverse = inverse.pin_memory().to(self.device, non_blocking=True)
                event = torch.cuda.Event()
                event.record(self.stream)
        self._count_fetch(flat, ids, staging, start)
        return FetchedRows(ids, rows, inverse, event, staging)

    def _stage(self, ids: Any, keep: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Store rows of ``ids`` (distinct, int64) in (pinned, for a CUDA table) host memory."""
        staging = torch.empty((len(ids), self.dim), dtype=self.dtype, pin_memory=self.cuda)
        self.store.gather(self.name, ids, out=staging)
        if keep is not None:
            keep.append(staging)
        return staging

    def _count_fetch(
        self, flat: torch.Tensor, ids: torch.Tensor, staging: torch.Tensor, start: float
    ) -> None:
        hit_rate = self.hot.stats.hit_rate if self.hot is not None else self.store.hit_rate
        if hit_rate is not None:
            self.stats.cache_hit_rate = float(hit_rate)
        self.stats.add(
            rows_requested=flat.numel(),
            unique_rows=len(ids),
            bytes_moved=staging.numel() * staging.element_size(),
            fetch_seconds=time.perf_counter() - start,
            fetches=1,
        )

    # ---- the model's side -----------------------------------------------------------------
    def _start(self, addresses: torch.Tensor | LayerAddresses, ahead: bool = False) -> Fetch:
        ready = None
        key = addresses  # compared by prepare() with addresses on the caller's device
        if isinstance(addresses, LayerAddresses):
            pass  # hashed when submitted (a CUDA model enqueues the hash kernels then)
        else:
            addresses = key = addresses.detach()
            if addresses.is_cuda:  # copy back without blocking this thread
                addresses = addresses.to("cpu", non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
        threads = self.prefetch_threads if ahead else self.fetch_threads
        return Fetch(key, (self._fetch, (addresses, ready)), threads)

    def prefetch(self, flat_addresses: torch.Tensor | LayerAddresses) -> None:
        """Fetch the rows of a *later* step (double buffering across steps).

        Hashing and host work start once this table's rows for the current step are in
        (its lookup), so they overlap the rest of the step rather than delaying the step's
        first kernels; or once the runtime has launched the model's forward
        (:meth:`start_prefetches`), or at once if the prefetched step comes first.
        """
        self._next = [*self._next[-1:], self._start(flat_addresses, ahead=True)]

    def start_prefetches(self) -> None:
        """Start the waiting prefetches (the runtime calls this once a forward is launched)."""
        for fetch in self._next:
            fetch.submit()

    def wait_prefetches(self) -> None:
        """Block until every started prefetch has gathered its rows and queued their copy
        to the device (errors surface at lookup)."""
        for fetch in self._next:
            if fetch.future is not None:
                fetch.future.exception()

    def prefetched_rows(self) -> list[FetchedRows]:
        """The rows every prefetch holds, once each has finished (started here if need be).

        Before rows are written to the store: no prefetch reads it meanwhile, and the
        caller can patch what the prefetches already hold.
        """
        return [fetch.result() for fetch in self._next]

    def prepare(self, flat_addresses: torch.Tensor | LayerAddresses) -> None:
        """Start fetching the rows the next ``lookup`` needs (reusing a matching prefetch).

        Rows the GPU reads in place, for addresses already on it, start loading now on the
        table's stream, beside the layers before this one (:meth:`_gather_early`).
        """
        self._direct = False
        self._join_early()
        if self._staged is not None:  # the host staged them already
            return
        match = next((f for f in self._next if f.matches(flat_addresses)), None)
        if match is not None:
            self._next.remove(match)
            if match.future is None:  # not started: the step waits for it now
                match.threads = self.fetch_threads
            self._current = match.submit()
            self.stats.add(reused_prefetches=1)
            return
        tokens = (
            flat_addresses.batch.tokens
            if isinstance(flat_addresses, LayerAddresses)
            else flat_addresses.shape[:-1].numel()
        )
        if tokens <= self.direct_tokens:  # decoding: no hand-off to another thread
            if self._mapped_rows() is not None:
                self._current, self._direct = None, True
                if isinstance(flat_addresses, torch.Tensor) and flat_addresses.is_cuda:
                    self._early = self._gather_early(flat_addresses)
            else:
                self._current = self._start(flat_addresses).run_here()
            return
        self._current = self._start(flat_addresses).submit()

    def _take(self, flat_addresses: torch.Tensor) -> FetchedRows:
        """The prepared fetch, ready for the compute stream."""
        if self._current is None and not self._direct:
            self.prepare(flat_addresses)
        if self._current is None:  # a caller that needs staged rows (training) after all
            self._current = self._start(flat_addresses).submit()
        self._direct = False
        fetch, self._current = self._current, None
        start = time.perf_counter()
        got = fetch.result()
        if got.event is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(got.event)
            got.rows.record_stream(compute)  # allocated on the side stream, read on this one
            if got.inverse is not None:
                got.inverse.record_stream(compute)
        self.stats.add(wait_seconds=time.perf_counter() - start)
        self.start_prefetches()  # this step's rows are in: the next step's may start loading
        requested = got.inverse.numel() if got.inverse is not None else len(got.ids)
        if requested != flat_addresses.numel():
            raise InputError("lookup addresses differ from the ones passed to prepare")
        return got

    def _gather_early(self, flat_addresses: torch.Tensor) -> EarlyRows:
        """Start the GPU's in-place gather of ``flat_addresses``' rows on the table's stream
        (after the work that computed them), so PCIe reads overlap the compute stream's work
        until :meth:`lookup` joins it. The rows are allocated on the compute stream, which
        owns them; a recorded decode step records the fork and the join."""
        mapped = self._mapped_rows()
        assert mapped is not None and self.stream is not None
        compute = torch.cuda.current_stream(self.device)
        flat = flat_addresses.reshape(-1)
        rows = torch.empty((flat.numel(), self.dim), dtype=mapped.dtype, device=self.device)
        self.stream.wait_stream(compute)
        with torch.cuda.stream(self.stream):
            self._gather_mapped(mapped, flat, rows)
        self._count_in_place(rows)
        return EarlyRows(flat_addresses, rows)

    def _gather_mapped(self, mapped: torch.Tensor, flat: torch.Tensor, rows: torch.Tensor) -> None:
        """``rows`` = the rows of ``flat`` (from the hasher: always in range), read in place
        from ``mapped``, hot ones from the cache (on the current stream, which orders them
        after any admission)."""
        if self.hot is None:
            gather_in_place(mapped, flat, out=rows, kernel=self.in_place_kernel)
            return
        with self.hot.held():  # no admission between the index and the gather
            gather_in_place(
                mapped,
                flat,
                self.hot.device_index(),
                self.hot.rows,
                rows,
                self._in_place_counts,
                kernel=self.in_place_kernel,
            )

    def warm_hot_rows(self, rows: Any, counts: Any, *, limit: int | None = None) -> int:
        """Admit the most frequent of distinct ``rows`` (ascending, counted ``counts`` times
        in sample text) into the hot cache, read from the store; returns how many."""
        if self.hot is None:
            raise InputError(f"table {self.name!r} has no hot-row cache (hot_rows=0)")
        stream = self.stream
        if stream is not None:  # admissions are ordered on the table's stream, after reads
            stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            admitted = self.hot.warm(rows, counts, self._stage, limit=limit)
        if stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(stream)
        return admitted

    def in_place_hits(self) -> tuple[int, int]:
        """(hits in the hot cache, rows) of every row read in place so far (waits for the
        device); (0, 0) without a cache."""
        if self._in_place_counts is None:
            return 0, 0
        hits, rows = self._in_place_counts.tolist()
        return int(hits), int(rows)

    def reset_in_place_hits(self) -> None:
        """Start :meth:`in_place_hits` again from zero."""
        if self._in_place_counts is not None:
            self._in_place_counts.zero_()

    @contextlib.contextmanager
    def frozen_hot_rows(self) -> Iterator[None]:
        """Within: the hot cache admits nothing and its device index stays as it is now (a
        recorded CUDA graph reads it); a no-op without a cache or rows read in place."""
        if self.hot is None or self._mapped_rows() is None:
            yield
            return
        with self.hot.frozen():
            assert self.stream is not None
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.stream):  # after reads of the old index, as gathers are
                self.hot.device_index()
            yield

    def _join_early(self) -> EarlyRows | None:
        """The compute stream waits for an early gather (if any), which is handed back: its
        rows and addresses are then safe to read, or to free."""
        early, self._early = self._early, None
        if early is not None:
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
        return early

    def _count_in_place(self, rows: torch.Tensor) -> None:
        self.stats.add(
            rows_requested=len(rows),
            unique_rows=len(rows),
            bytes_moved=rows.numel() * rows.element_size(),
            fetches=1,
        )

    def _read_in_place(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Rows gathered by the GPU straight from pinned host memory: joined from the table's
        stream if ``prepare`` started them, else gathered here (on the compute stream; on the
        table's, joined at once, with a hot cache)."""
        self._direct = False
        early = self._join_early()
        if early is not None and early.matches(flat_addresses):
            return early.rows.view(*flat_addresses.shape, self.dim)
        mapped = self._mapped_rows()
        assert mapped is not None
        flat = flat_addresses.reshape(-1).to(self.device, non_blocking=True)
        if self.hot is not None:  # on the table's stream, ordered with the cache's admissions
            self._early = self._gather_early(flat)
            rows = self._join_early().rows
            return rows.view(*flat_addresses.shape, self.dim)
        rows = gather_in_place(mapped, flat, kernel=self.in_place_kernel)  # hashed: in range
        self._count_in_place(rows)
        return rows.view(*flat_addresses.shape, self.dim)

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Rows (B, T, H, D) for the addresses announced by ``prepare``."""
        if self._staged is not None:
            rows = self._staged.rows(flat_addresses.numel())
            return rows.view(*flat_addresses.shape, self.dim)
        if self._direct and flat_addresses.is_cuda:
            return self._read_in_place(flat_addresses)
        got = self._take(flat_addresses)
        rows = got.rows if got.inverse is None else got.rows[got.inverse]
        return rows.view(*flat_addresses.shape, self.dim)
