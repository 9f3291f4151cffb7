"""Rows gathered by the GPU in place: hot rows from device memory, the rest over PCIe.

A decode step's Engram rows are read by the GPU straight from pinned host memory
(:mod:`engram_sdk.table_runtime.mapped`). Each row read that way costs a PCIe round trip
that grows with the range read (~47 us for 1,024 random 128-byte rows over 16 GiB on the
H200 host, 19 us from device memory), and a graphed decode step waits for it at the Engram
layer. N-grams of real text are Zipf-distributed, so a
:class:`~engram_sdk.table_runtime.hot_cache.HotRowCache` of a few million rows on the GPU
holds most of what a step asks for; :func:`gather_in_place` reads those from the cache and
only the others from the host.

Everything here is device work with fixed shapes (one kernel), so a recorded CUDA graph
replays it: the cache's index (a bucketed hash index,
:mod:`~engram_sdk.table_runtime.hot_index`) lives in fixed device tensors
(:meth:`HotRowCache.device_index`), refreshed in place when the cache changes.

The kernel (:func:`_gather_kernel`, Triton) reads each address's bucket (one read), then
loads a hit's row from the cache and a miss's row from the host, with masks, so hits never
cross PCIe; each row is read as whole 16-byte vectors. Without Triton (CPU tensors, or a torch build without it) :func:`gather_torch`
gives the same rows from torch ops: every row is read from the host, then hits are taken
from the cache (correct, but with no PCIe saved).
"""

from __future__ import annotations

import torch

from engram_sdk.table_runtime.hot_index import MULTIPLIER, WAYS, bucket_of

BLOCK_ROWS, NUM_WARPS = 4, 1  # 256 programs for a 1,024-row decode step

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU builds of torch: the torch path serves
    triton = None


def find_slots(
    index_ids: torch.Tensor, index_slots: torch.Tensor, flat: torch.Tensor
) -> torch.Tensor:
    """Slot of each address of ``flat`` (1-D int64) in the cache, -1 where not indexed.

    ``index_ids`` / ``index_slots``: a :class:`~engram_sdk.table_runtime.hot_index.BucketIndex`
    on the device (``HotRowCache.device_index()``). Fixed shapes only.
    """
    where = bucket_of(flat, index_ids.numel() // WAYS)[:, None] * WAYS
    where = where + torch.arange(WAYS, device=flat.device)
    same = index_ids[where] == flat[:, None]
    return torch.where(same.any(1), (index_slots[where] * same).sum(1), -1)


def gather_torch(
    host_rows: torch.Tensor,
    flat: torch.Tensor,
    index: tuple[torch.Tensor, torch.Tensor] | None,
    cache_rows: torch.Tensor | None,
    out: torch.Tensor,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """``out`` (n, dim) = the rows of ``flat``: from ``cache_rows`` where ``index`` (a device
    bucket index, see :func:`find_slots`) holds them, else from ``host_rows``. Every row is
    read from ``host_rows`` (see the module). ``counts`` (2,) int64: adds (hits, rows)."""
    torch.index_select(host_rows, 0, flat, out=out)
    if index is not None and cache_rows is not None:
        slots = find_slots(*index, flat.to(torch.int64))
        hit = slots >= 0
        cached = cache_rows.index_select(0, slots.clamp(min=0))
        out.copy_(torch.where(hit[:, None], cached, out))
        if counts is not None:
            counts[0] += hit.sum()
    if counts is not None:
        counts[1] += flat.numel()
    return out


if triton is not None:

    @triton.jit
    def _gather_kernel(
        flat_ptr,
        index_ids_ptr,
        index_slots_ptr,
        cache_ptr,
        host_ptr,
        out_ptr,
        counts_ptr,
        n,
        shift,
        bucket_mask,
        dim: tl.constexpr,
        HAS_CACHE: tl.constexpr,
        COUNT: tl.constexpr,
        WAYS_: tl.constexpr,
        MULTIPLIER: tl.constexpr,
        BLOCK_ROWS: tl.constexpr,
        BLOCK_DIM: tl.constexpr,
    ):
        rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        cols = tl.arange(0, BLOCK_DIM)
        live = rows < n
        inside = live[:, None] & (cols < dim)[None, :]
        ids = tl.load(flat_ptr + rows, mask=live, other=0).to(tl.int64)
        if HAS_CACHE:
            bucket = ((ids * MULTIPLIER) >> shift) & bucket_mask  # as hot_index.bucket_of
            where = bucket[:, None] * WAYS_ + tl.arange(0, WAYS_)[None, :]
            held = tl.load(index_ids_ptr + where, mask=live[:, None], other=-1)
            same = held == ids[:, None]
            hit = tl.max(same.to(tl.int32), axis=1) > 0
            slots = tl.sum(tl.load(index_slots_ptr + where, mask=same, other=0), axis=1)
            cached = tl.load(
                cache_ptr + slots[:, None] * dim + cols[None, :],
                mask=inside & hit[:, None],
                other=0,
            )
            host = tl.load(
                host_ptr + ids[:, None] * dim + cols[None, :], mask=inside & ~hit[:, None], other=0
            )
            values = tl.where(hit[:, None], cached, host)
            if COUNT:
                tl.atomic_add(counts_ptr, tl.sum((hit & live).to(tl.int64), axis=0))
        else:
            values = tl.load(host_ptr + ids[:, None] * dim + cols[None, :], mask=inside, other=0)
        if COUNT:
            tl.atomic_add(counts_ptr + 1, tl.sum(live.to(tl.int64), axis=0))
        tl.store(out_ptr + rows[:, None] * dim + cols[None, :], values, mask=inside)


def gather_triton(
    host_rows: torch.Tensor,
    flat: torch.Tensor,
    index: tuple[torch.Tensor, torch.Tensor] | None,
    cache_rows: torch.Tensor | None,
    out: torch.Tensor,
    counts: torch.Tensor | None = None,
    block_rows: int = BLOCK_ROWS,
    num_warps: int = NUM_WARPS,
) -> torch.Tensor:
    """:func:`gather_torch`'s rows from one Triton kernel, which also looks the cache up:
    hits never read the host. ``block_rows`` rows per program, ``num_warps`` warps each
    (many small programs spread the PCIe reads over many SMs)."""
    assert triton is not None
    n, dim = out.shape
    if n == 0:
        return out
    has_cache = index is not None and cache_rows is not None
    buckets = index[0].numel() // WAYS if index is not None else 2
    grid = (triton.cdiv(n, block_rows),)
    _gather_kernel[grid](
        flat,
        index[0] if has_cache else flat,
        index[1] if has_cache else flat,
        cache_rows if has_cache else out,
        host_rows,
        out,
        counts if counts is not None else flat,
        n,
        64 - (buckets.bit_length() - 1),
        buckets - 1,
        dim,
        HAS_CACHE=has_cache,
        COUNT=counts is not None,
        WAYS_=WAYS,
        MULTIPLIER=MULTIPLIER,
        BLOCK_ROWS=block_rows,
        BLOCK_DIM=triton.next_power_of_2(dim),
        num_warps=num_warps,
    )
    return out


def triton_available() -> bool:
    """Whether the Triton gather can run here (Triton imported)."""
    return triton is not None


def gather_in_place(
    host_rows: torch.Tensor,
    flat: torch.Tensor,
    index: tuple[torch.Tensor, torch.Tensor] | None = None,
    cache_rows: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    counts: torch.Tensor | None = None,
    *,
    kernel: str = "auto",
    **launch: int,
) -> torch.Tensor:
    """The rows (n, dim) of addresses ``flat`` (1-D, in range), hits from ``cache_rows``.

    ``host_rows``: the table, a device view of pinned host memory (or any tensor on the
    device); ``index``: the cache's device index (``HotRowCache.device_index()``; None: no
    cache), ``cache_rows`` its rows;
    ``counts`` (2,) int64 on the device: (hits, rows) are added to it. ``kernel``: "triton",
    "torch" or "auto" (Triton on CUDA when it is installed); ``launch``: the Triton
    kernel's ``block_rows`` / ``num_warps``.
    """
    if kernel not in ("auto", "triton", "torch"):
        raise ValueError(f"kernel must be 'auto', 'triton' or 'torch', got {kernel!r}")
    if out is None:
        out = torch.empty(
            (flat.numel(), host_rows.shape[1]), dtype=host_rows.dtype, device=flat.device
        )
    if kernel == "auto":
        kernel = "triton" if flat.is_cuda and triton is not None else "torch"
    if kernel == "triton" and triton is None:
        raise ValueError("kernel='triton' needs Triton installed (pip install triton)")
    if kernel == "triton":
        return gather_triton(host_rows, flat, index, cache_rows, out, counts, **launch)
    return gather_torch(host_rows, flat, index, cache_rows, out, counts)
