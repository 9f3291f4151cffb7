"""``NgramHasher``: canonical ids (B, T) → Engram addresses (B, T, heads) for each layer."""

from __future__ import annotations

from typing import Any, overload

import numpy as np

from engram_sdk.errors import InputError
from engram_sdk.hashing import numpy_kernel
from engram_sdk.hashing.config import DEAD_ID, NgramConfig
from engram_sdk.hashing.primes import head_primes

LAYER_SEED_STRIDE = 10007
INT32_MAX = 2**31 - 1


def layer_multipliers(seed: int, layer_id: int, vocab_size: int, max_n: int) -> np.ndarray:
    """Odd multipliers ``2r + 1`` of one layer, r ~ U[0, (int64_max // vocab) // 2)."""
    half_bound = max(1, (np.iinfo(np.int64).max // vocab_size) // 2)
    rng = np.random.default_rng(seed + LAYER_SEED_STRIDE * layer_id)
    return rng.integers(0, half_bound, size=(max_n,), dtype=np.int64) * 2 + 1


class NgramHasher:
    """Maps canonical ids to per-layer, per-head addresses, identically in numpy and torch.

    Addresses of position t depend only on ids t-n+1..t (left of the sequence: ``pad_id``,
    or the ``prefix`` passed in), so hashing a continuation with the previous chunk's last
    ``max_ngram_size - 1`` ids as prefix equals hashing the whole sequence.
    """

    def __init__(self, config: NgramConfig) -> None:
        self.config = config
        self.multipliers = {
            layer: layer_multipliers(config.seed, layer, config.vocab_size, config.max_ngram_size)
            for layer in config.layer_ids
        }
        self.primes = head_primes(
            config.layer_ids, config.engram_vocab_size, config.n_head_per_ngram
        )
        self._np_primes = {
            layer: [np.asarray(p, dtype=np.int64) for p in per_order]
            for layer, per_order in self.primes.items()
        }
        self._torch_primes: dict[tuple[int, Any], Any] = {}

    # ---- table geometry -------------------------------------------------------------
    @property
    def context(self) -> int:
        """How many previous ids a continuation needs (``max_ngram_size - 1``)."""
        return self.config.max_ngram_size - 1

    def head_sizes(self, layer_id: int) -> list[int]:
        """Rows of each head's table in one layer, heads ordered by order then head."""
        return [p for per_order in self._layer(layer_id) for p in per_order]

    def head_offsets(self, layer_id: int) -> np.ndarray:
        """Offset of each head inside one flat table holding all heads of the layer."""
        sizes = np.asarray(self.head_sizes(layer_id), dtype=np.int64)
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def table_rows(self, layer_id: int) -> int:
        """Rows of the flat table of one layer."""
        return int(sum(self.head_sizes(layer_id)))

    def fits_int32(self, layer_id: int, flat: bool = False) -> bool:
        """Whether addresses (flat or per head) of the layer fit in int32."""
        bound = self.table_rows(layer_id) if flat else max(self.head_sizes(layer_id))
        return bound - 1 <= INT32_MAX

    # ---- hashing --------------------------------------------------------------------
    @overload
    def hash(
        self, ids: np.ndarray, layer_id: int, prefix: Any = None, flat: bool = False
    ) -> np.ndarray: ...
    @overload
    def hash(self, ids: Any, layer_id: int, prefix: Any = None, flat: bool = False) -> Any: ...

    def hash(self, ids: Any, layer_id: int, prefix: Any = None, flat: bool = False) -> Any:
        """Addresses (B, T, heads_total) of one layer, int64, numpy in → numpy out, torch → torch.

        ``prefix`` (B, P) holds the ids before ``ids`` (only the last ``context`` are used).
        ``flat`` adds :meth:`head_offsets` so the addresses index one flat table.
        """
        self._known(layer_id)
        if _is_torch(ids):
            return self.hash_torch(ids, layer_id, prefix=prefix, flat=flat)
        ids = self._check_ids(np.asarray(ids), "ids")
        if prefix is not None:
            prefix = self._check_ids(np.asarray(prefix), "prefix", batch=ids.shape[0])
        out = numpy_kernel.addresses(
            ids,
            self.multipliers[layer_id],
            self._np_primes[self._known(layer_id)],
            self.config.pad_id,
            prefix,
            self.config.block_dead,
        )
        return out + self.head_offsets(layer_id) if flat else out

    def hash_torch(
        self,
        ids: Any,
        layer_id: int,
        prefix: Any = None,
        flat: bool = False,
        out_dtype: Any = None,
        compiled: bool = False,
        trusted: bool = False,
    ) -> Any:
        """Torch path of :meth:`hash`; ``out_dtype=torch.int32`` where :meth:`fits_int32`.

        ``compiled`` fuses the whole function into one kernel with ``torch.compile``.
        ``trusted``: the ids are known canonical ids (e.g. from the model's own table), so
        their range is not checked (on CUDA that check reads them back: a device sync).
        """
        import torch

        from engram_sdk.hashing import torch_kernel

        self._known(layer_id)
        out_dtype = out_dtype or torch.int64
        if out_dtype == torch.int32 and not self.fits_int32(layer_id, flat):
            raise InputError(f"layer {layer_id} addresses do not fit in int32; use int64")
        self._check_ids(ids, "ids", ranged=not trusted)
        if prefix is not None:
            self._check_ids(prefix, "prefix", batch=ids.shape[0], ranged=not trusted)
        primes = self._primes_on(layer_id, ids.device)
        multipliers = [int(m) for m in self.multipliers[layer_id]]
        fast = min(self.head_sizes(layer_id)) >= torch_kernel.FAST_REMAINDER_MIN_PRIME
        if compiled and fast and ids.is_cuda and _triton_available():
            from engram_sdk.hashing.triton_kernel import addresses_triton

            return addresses_triton(
                ids,
                *self._triton_tables(layer_id, ids.device, flat),
                self.config.pad_id,
                prefix,
                out_dtype,
                block_dead=self.config.block_dead,
            )
        inv = self._inverse_primes_on(layer_id, ids.device) if compiled and fast else None
        kernel = torch_kernel.addresses_compiled if compiled else torch_kernel.addresses
        out = kernel(
            ids, multipliers, primes, self.config.pad_id, prefix, torch.int64, inv,
            self.config.block_dead,
        )  # fmt: skip
        if flat:
            out = out + torch.as_tensor(self.head_offsets(layer_id), device=ids.device)
        return out.to(out_dtype)

    def hash_all(self, ids: Any, prefix: Any = None, flat: bool = False) -> dict[int, Any]:
        """:meth:`hash` for every configured layer."""
        return {layer: self.hash(ids, layer, prefix, flat) for layer in self.config.layer_ids}

    def fingerprints(
        self, ids: np.ndarray, n: int, layer_id: int | None = None, prefix: np.ndarray | None = None
    ) -> np.ndarray:
        """64-bit N-gram fingerprints (B, T) of order ``n``: the mix before any modulus.

        Position t fingerprints ids t-n+1..t. This is the address function without the
        small table modulus, used by the episodic memory index.
        """
        if not 2 <= n <= self.config.max_ngram_size:
            raise InputError(f"n must be in [2, {self.config.max_ngram_size}], got {n}")
        layer = self.config.layer_ids[0] if layer_id is None else self._known(layer_id)
        ids = self._check_ids(np.asarray(ids), "ids")
        padded = numpy_kernel.with_context(ids, prefix, self.context, self.config.pad_id)
        dead_pad = self.config.pad_id if self.config.block_dead else None
        return numpy_kernel.ngram_mixes(
            padded, self.multipliers[layer], self.config.max_ngram_size, dead_pad
        )[n - 2]

    # ---- helpers --------------------------------------------------------------------
    def _layer(self, layer_id: int) -> list[list[int]]:
        return self.primes[self._known(layer_id)]

    def _known(self, layer_id: int) -> int:
        if layer_id not in self.primes:
            raise InputError(
                f"layer {layer_id} is not an Engram layer; configured: {self.config.layer_ids}"
            )
        return layer_id

    def _primes_on(self, layer_id: int, device: Any) -> Any:
        import torch

        key = (layer_id, str(device))
        if key not in self._torch_primes:
            self._torch_primes[key] = torch.tensor(
                self._layer(layer_id), dtype=torch.int64, device=device
            )
        return self._torch_primes[key]

    def _inverse_primes_on(self, layer_id: int, device: Any) -> Any:
        import torch

        key = (layer_id, f"inv:{device}")
        if key not in self._torch_primes:
            self._torch_primes[key] = 1.0 / self._primes_on(layer_id, device).to(torch.float64)
        return self._torch_primes[key]

    def _triton_tables(self, layer_id: int, device: Any, flat: bool) -> tuple[Any, ...]:
        import torch

        key = (layer_id, f"triton:{device}:{flat}")
        if key not in self._torch_primes:
            primes = torch.tensor(self.head_sizes(layer_id), dtype=torch.int64, device=device)
            offsets = torch.as_tensor(self.head_offsets(layer_id), device=device)
            order = torch.arange(self.config.max_ngram_size - 1, dtype=torch.int32, device=device)
            self._torch_primes[key] = (
                torch.as_tensor(self.multipliers[layer_id], device=device),
                primes,
                1.0 / primes.to(torch.float64),
                offsets if flat else torch.zeros_like(offsets),
                order.repeat_interleave(self.config.n_head_per_ngram),
            )
        return self._torch_primes[key]

    def _check_ids(self, ids: Any, name: str, batch: int | None = None, ranged: bool = True) -> Any:
        if ids.ndim != 2:
            raise InputError(f"{name} must have shape (batch, seq), got {tuple(ids.shape)}")
        if batch is not None and ids.shape[0] != batch:
            raise InputError(f"{name} has batch {ids.shape[0]}, expected {batch}")
        if _is_torch(ids):
            if ids.dtype.is_floating_point or ids.dtype.is_complex:
                raise InputError(f"{name} must be an integer tensor, got {ids.dtype}")
        elif not np.issubdtype(ids.dtype, np.integer):
            raise InputError(f"{name} must be integer ids, got dtype {ids.dtype}")
        if ranged and (ids.numel() if _is_torch(ids) else ids.size) and not _recording(ids):
            lo, hi = int(ids.min()), int(ids.max())
            floor = DEAD_ID if self.config.block_dead else 0
            if lo < floor or hi >= self.config.vocab_size:
                dead = f" or DEAD_ID ({DEAD_ID})" if self.config.block_dead else ""
                raise InputError(
                    f"{name} must be canonical ids in [0, {self.config.vocab_size}){dead}, "
                    f"got range [{lo}, {hi}]"
                )
        return ids


def _recording(ids: Any) -> bool:
    """CUDA ids while a CUDA graph records: reading them back would break the recording."""
    if not _is_torch(ids) or not ids.is_cuda:
        return False
    import torch

    return torch.cuda.is_current_stream_capturing()


def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")
