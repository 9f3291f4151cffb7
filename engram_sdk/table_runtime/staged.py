"""Rows staged by the host in a fixed pinned buffer that a recorded CUDA graph reads in place.

A decode step recorded as a CUDA graph cannot wait for a host fetch halfway through. For a
store whose rows are not in pinned memory (``shards://``, ``lmdb://``), the host gathers the
rows of the next step's addresses into one fixed pinned buffer *before* launching the
replay, and the recorded lookup copies them from that buffer (a kernel reading host memory
over PCIe: the GPU sees whatever the buffer holds when the replay reaches the layer). The
buffer's address never changes, so the graph stays valid across steps.
"""

from __future__ import annotations

import numpy as np
import torch

from engram_sdk.errors import InputError
from engram_sdk.stores.base import Store
from engram_sdk.table_runtime.mapped import mapped_view


class StagedRows:
    """One pinned buffer of up to ``capacity`` rows and its device view (CPU: the buffer)."""

    def __init__(
        self, capacity: int, dim: int, dtype: torch.dtype, store_dtype: str, device: torch.device
    ) -> None:
        self.capacity, self.dim, self.device = capacity, dim, device
        cuda = device.type == "cuda"
        self.host = torch.empty((capacity, dim), dtype=dtype, pin_memory=cuda)
        self.view = self.host
        if cuda:
            as_numpy = self.host.view(torch.int16) if dtype == torch.bfloat16 else self.host
            view = mapped_view(as_numpy.numpy(), store_dtype, device)
            if view is None:
                raise InputError(f"rows of dtype {store_dtype} cannot be staged for {device}")
            self.view = view
        self.count = 0  # rows staged for the next lookup
        self._positions = torch.arange(capacity, device=device)

    def fill(self, store: Store, table: str, ids: np.ndarray) -> None:
        """Gather the store rows of ``ids`` (int64, duplicates allowed) into the buffer."""
        if len(ids) > self.capacity:
            raise InputError(
                f"{len(ids)} rows to stage, the staging buffer holds {self.capacity} "
                "(a recorded step keeps its batch)"
            )
        store.gather(table, ids, out=self.host[: len(ids)])
        self.count = len(ids)

    def rows(self, count: int) -> torch.Tensor:
        """The staged rows, copied to the device by a GPU kernel reading the pinned buffer
        (the same in-place read as ``dram://``'s decoding path; inside a recorded step)."""
        if count != self.count:
            raise InputError(f"{count} rows looked up, {self.count} staged")
        return self.view.index_select(0, self._positions[:count])
