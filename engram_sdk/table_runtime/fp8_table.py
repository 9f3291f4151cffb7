"""An Engram table served from FP8 rows in a store (DeepSeek-V4.1's tables, 264 bytes a row).

Synchronous and simple: ``lookup`` gathers the distinct addresses from the store, decodes
them (:func:`engram_sdk.stores.fp8_rows.decode_rows`) and moves them to the compute device.
Swap it into a model with ``model.set_engram_table(layer, Fp8StoreTable(store, name, dim))``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engram_sdk.errors import InputError
from engram_sdk.stores.base import Store
from engram_sdk.stores.fp8_rows import decode_rows, row_bytes


class Fp8StoreTable(nn.Module):
    """The rows of one Engram layer from an FP8 table of ``store`` (an :class:`EngramTable`)."""

    def __init__(
        self, store: Store, name: str, dim: int, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__()
        spec = store.table(name)
        if spec.dtype != "int8" or spec.dim != row_bytes(dim):
            raise InputError(
                f"table {name!r} is {spec.dim} x {spec.dtype}; FP8 rows of {dim} values are "
                f"{row_bytes(dim)} x int8"
            )
        self.store, self.name, self.device = store, name, torch.device(device)
        self.rows, self.dim = spec.rows, dim

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        """float32 rows (…, dim) for int addresses (…) on the compute device."""
        flat = flat_addresses.detach().reshape(-1).cpu().numpy().astype(np.int64)
        unique, inverse = np.unique(flat, return_inverse=True)
        rows = decode_rows(self.store.gather(self.name, unique), self.dim)
        out = rows[torch.from_numpy(inverse)].to(self.device)
        return out.view(*flat_addresses.shape, self.dim)
