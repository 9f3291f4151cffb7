"""``StoreTable``: an Engram table served from any store, fetched before it is needed.

``prepare(addresses)`` (called by the model for every Engram layer before layer 0 runs)
hands the fetch to a worker thread: deduplicate the addresses, gather the unique rows from
the store into a pinned host buffer, copy them to the device on a side CUDA stream and record
an event. ``lookup`` waits only for that layer's fetch, then expands the unique rows back to
(B, T, H, D) on the compute stream. ``prefetch(addresses)`` starts the fetch for a later
step, so batch k+1's rows load while batch k computes (two staging slots per table).

Tables served this way are frozen; ``engram_sdk.prefetch.train`` trains them in the store.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from engram_sdk.errors import InputError

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="engram-prefetch")


@dataclass
class PrefetchStats:
    """What the tables fetched, and how long the model waited for them."""

    rows_requested: int = 0
    unique_rows: int = 0
    bytes_moved: int = 0
    fetch_seconds: float = 0.0
    wait_seconds: float = 0.0
    fetches: int = 0
    reused_prefetches: int = 0
    cache_hit_rate: float | None = None

    @property
    def dedup_ratio(self) -> float:
        """Requested rows per unique row fetched."""
        return self.rows_requested / max(self.unique_rows, 1)

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain numbers for reports."""
        return {**self.__dict__, "dedup_ratio": self.dedup_ratio}


@dataclass
class _Fetch:
    addresses: torch.Tensor  # CPU copy, for matching a prefetch to the step that uses it
    future: Future = field(repr=False)


class StoreTable:
    """Engram rows of one layer read from ``store`` table ``name`` (see the module docstring)."""

    host_addresses = True  # the model may hand prepare() host-side addresses (no GPU sync)

    def __init__(
        self,
        store: Any,
        name: str,
        device: str | torch.device = "cpu",
        stats: PrefetchStats | None = None,
    ) -> None:
        spec = store.table(name)
        self.store, self.name, self.spec = store, name, spec
        self.rows, self.dim = spec.rows, spec.dim
        self.device = torch.device(device)
        self.dtype = spec.torch_dtype()
        self.stats = stats if stats is not None else PrefetchStats()
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._current: _Fetch | None = None
        self._next: list[_Fetch] = []  # prefetches for later steps (two staging slots)

    def _fetch(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any]:
        start = time.perf_counter()
        unique, inverse = torch.unique(flat, return_inverse=True)
        staging = torch.empty((len(unique), self.dim), dtype=self.dtype, pin_memory=self.cuda)
        self.store.gather(self.name, unique.numpy(), out=staging)
        event = None
        if self.cuda:
            with torch.cuda.stream(self.stream):
                rows = staging.to(self.device, non_blocking=True)
                inverse = inverse.to(self.device, non_blocking=True)
                event = torch.cuda.Event()
                event.record(self.stream)
        else:
            rows = staging
        s = self.stats
        s.rows_requested += flat.numel()
        s.unique_rows += len(unique)
        s.bytes_moved += staging.numel() * staging.element_size()
        s.fetch_seconds += time.perf_counter() - start
        s.fetches += 1
        hit_rate = getattr(self.store, "hit_rate", None)
        if hit_rate is not None:
            s.cache_hit_rate = float(hit_rate)
        return rows, inverse, (event, staging)

    def _start(self, addresses: torch.Tensor) -> _Fetch:
        if addresses.numel() and (int(addresses.min()) < 0 or int(addresses.max()) >= self.rows):
            raise InputError(f"Engram addresses outside table {self.name!r} of {self.rows} rows")
        flat = addresses.detach().reshape(-1).to("cpu", torch.int64)
        return _Fetch(flat, _POOL.submit(self._fetch, flat))

    def prefetch(self, flat_addresses: torch.Tensor) -> None:
        """Start fetching the rows of a *later* step (double buffering across steps)."""
        self._next = [*self._next[-1:], self._start(flat_addresses)]

    def prepare(self, flat_addresses: torch.Tensor) -> None:
        """Start fetching the rows the next ``lookup`` needs (reusing a matching prefetch)."""
        flat = flat_addresses.detach().reshape(-1).to("cpu", torch.int64)
        match = next((f for f in self._next if torch.equal(f.addresses, flat)), None)
        if match is not None:
            self._next.remove(match)
            self._current = match
            self.stats.reused_prefetches += 1
        else:
            self._current = self._start(flat_addresses)

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """Rows (B, T, H, D) for the addresses announced by ``prepare``."""
        if self._current is None:
            self.prepare(flat_addresses)
        fetch, self._current = self._current, None
        start = time.perf_counter()
        rows, inverse, (event, _staging) = fetch.future.result()
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)
        self.stats.wait_seconds += time.perf_counter() - start
        if inverse.numel() != flat_addresses.numel():
            raise InputError("lookup addresses differ from the ones passed to prepare")
        return rows[inverse].view(*flat_addresses.shape, self.dim)
