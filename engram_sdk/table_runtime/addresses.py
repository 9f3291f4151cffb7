"""Addresses of host ids, hashed off the thread that launches the model's kernels.

Every Engram address of a step is known from its token ids before the first layer runs.
Generation and training feed ids from the host, so the runtime can hash them without
making the launching thread wait on the GPU: :class:`HostHasher` hands each store table a
:class:`LayerAddresses` whose hashing starts (a CUDA model: kernels and a copy back, on a
side stream) on the launching thread and finishes on the table's fetch thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol

import torch

Finish = Callable[[], dict[int, torch.Tensor]]


class Addressing(Protocol):
    """What hashing needs from a model: its address function."""

    def engram_addresses(
        self, input_ids: torch.Tensor, prefix: torch.Tensor | None = None
    ) -> Mapping[int, torch.Tensor]:
        """Flat addresses (B, T, H) of every Engram layer; ``prefix``: earlier canonical ids."""


class BatchAddresses:
    """Every Engram layer's addresses for one batch of host ids, hashed when first needed.

    ``launch()`` starts the hashing on the calling thread and returns a function that
    finishes it: with a CUDA model, launching enqueues the hash kernels and the copy back on
    a side stream and finishing waits for them; on CPU, launching does nothing and finishing
    hashes. Tables call :meth:`start` on the model's thread and :meth:`result` on their fetch
    thread, so the thread that launches the model's kernels never hashes nor waits.
    Thread-safe.
    """

    def __init__(self, launch: Callable[[], Finish], tokens: int) -> None:
        self.tokens = tokens  # how many token positions the batch holds
        self._launch: Callable[[], Finish] | None = launch
        self._finish: Finish | None = None
        self._result: dict[int, torch.Tensor] | None = None
        self._launch_lock = threading.Lock()
        self._finish_lock = threading.Lock()  # separate: start() never waits for a finish

    def start(self) -> None:
        """Launch the hashing if nobody has yet (returns at once if somebody has)."""
        if self._launch is None:
            return
        with self._launch_lock:
            if self._launch is not None:
                self._finish, self._launch = self._launch(), None

    def result(self) -> dict[int, torch.Tensor]:
        """Flat addresses (B, T, H) per Engram layer, on the host."""
        self.start()
        with self._finish_lock:
            if self._result is None:
                assert self._finish is not None
                self._result, self._finish = self._finish(), None
            return self._result

    def layer(self, layer_id: int) -> LayerAddresses:
        """The addresses of one layer, still unresolved."""
        return LayerAddresses(self, layer_id)


class LayerAddresses:
    """One layer's share of a :class:`BatchAddresses` (resolved with :meth:`result`)."""

    def __init__(self, batch: BatchAddresses, layer_id: int) -> None:
        self.batch, self.layer_id = batch, layer_id

    def result(self) -> torch.Tensor:
        """Flat addresses (B, T, H) of this layer."""
        return self.batch.result()[self.layer_id]

    def same_batch(self, other: object) -> bool:
        """True for the same layer of the same batch object."""
        return (
            isinstance(other, LayerAddresses)
            and other.batch is self.batch
            and other.layer_id == self.layer_id
        )


class HostHasher:
    """Makes :class:`BatchAddresses` of host ids for ``model`` computing on ``device``.

    A batch announced with ``remember=True`` (a prefetch) is kept for the next two calls,
    so the step that runs it later gets the same object: hashed once, and recognised by the
    tables as the batch they already fetched.
    """

    def __init__(self, model: Addressing, device: torch.device) -> None:
        self.model, self.device = model, device
        self._memo: list[tuple[torch.Tensor, BatchAddresses]] = []
        self._stream: torch.cuda.Stream | None = None

    def batch(
        self, host_ids: torch.Tensor, prefix: torch.Tensor | None = None, remember: bool = False
    ) -> BatchAddresses:
        """The addresses of ``host_ids`` after the canonical ids ``prefix`` (host tensors)."""
        if prefix is None:
            for ids, batch in self._memo:
                if ids.shape == host_ids.shape and torch.equal(ids, host_ids):
                    return batch
        ids = host_ids.clone()
        before = None if prefix is None else prefix.clone()
        batch = BatchAddresses(lambda: self._launch(ids, before), ids.numel())
        if remember and prefix is None:
            self._memo = [*self._memo[-1:], (ids, batch)]
        return batch

    def _launch(self, ids: torch.Tensor, prefix: torch.Tensor | None) -> Finish:
        """Start hashing host ids; the returned function waits and gives host addresses.

        A CUDA model hashes on a side stream (microseconds of GPU work that queue behind
        nothing) and copies the addresses back; a CPU model hashes when the result is asked.
        """
        if self.device.type != "cuda":
            return lambda: dict(self.model.engram_addresses(ids, prefix))
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device, priority=-1)  # ahead of compute
        with torch.cuda.stream(self._stream):
            on_device = ids.pin_memory().to(self.device, non_blocking=True)
            before = (
                None if prefix is None else prefix.pin_memory().to(self.device, non_blocking=True)
            )
            host = {
                layer: addresses.to("cpu", non_blocking=True)
                for layer, addresses in self.model.engram_addresses(on_device, before).items()
            }
            done = torch.cuda.Event()
            done.record()

        def finish() -> dict[int, torch.Tensor]:
            done.synchronize()
            return host

        return finish
