"""Model, tables, data and disk helpers of ``engram_paper_gpu.py`` (no table-runtime calls)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from hot_cache_text import real_text_ids


class GpuRows(torch.nn.Module):
    """The baseline's Engram table: rows resident in device memory, looked up in place."""

    def __init__(self, rows: torch.Tensor) -> None:
        super().__init__()
        self.rows, self.dim = rows.shape
        self.register_buffer("weight", rows, persistent=False)

    def prepare(self, flat_addresses) -> None:
        """Nothing to fetch (today's table protocol announces addresses first)."""

    def lookup(self, flat_addresses: torch.Tensor) -> torch.Tensor:
        return F.embedding(flat_addresses.long(), self.weight)


def host_rows_store(tables: dict[str, torch.Tensor], pin: bool):
    """A read-only ``dram``-like store over host bf16 ``tables``, pinned in place when ``pin``."""
    from engram_sdk.stores import Store, TableSpec
    from engram_sdk.stores.blocks import take_rows
    from engram_sdk.stores.errors import StoreReadOnlyError

    arrays = {name: rows.view(torch.int16).numpy().view(np.uint16) for name, rows in tables.items()}

    class HostRows(Store):
        backend = "dram"  # rows in memory: no deduplication, GPU reads in place for decoding

        def __init__(self) -> None:
            super().__init__("hostrows://", "r")
            self.specs = {
                name: TableSpec(name=name, rows=len(a), dim=a.shape[1], dtype="bfloat16")
                for name, a in arrays.items()
            }
            self.registered = []
            for a in arrays.values() if pin else ():
                err = torch.cuda.cudart().cudaHostRegister(a.ctypes.data, a.nbytes, 0)
                if int(err) != 0:  # measured anyway, from pageable memory: said in the output
                    print(f"cudaHostRegister of {a.nbytes / 1e9:.0f} GB failed ({err}): NOT pinned")
                    continue
                self.registered.append(a)

        def pinned_rows(self, table: str) -> np.ndarray | None:
            return arrays[table] if any(a is arrays[table] for a in self.registered) else None

        def _specs(self):
            return self.specs

        def _read_rows(self, spec, row_ids, out) -> None:
            take_rows(arrays[spec.name], row_ids, out)

        def _get(self, ns, keys):
            return [None] * len(keys)

        def _scan(self, ns, prefix):
            return iter(())

        def _namespaces(self):
            return []

        def _commit(self, pending) -> None:
            raise StoreReadOnlyError("hostrows:// is read-only", path=self.uri)

        def _verify(self, report) -> None:
            report.checked_bytes = sum(a.nbytes for a in arrays.values())

        def _close(self) -> None:
            for a in self.registered:
                torch.cuda.cudart().cudaHostUnregister(a.ctypes.data)

    return HostRows()


def dense_config(table_params: float, smoke: bool):
    """A dense backbone (~4B parameters; tiny with ``smoke``), one Engram layer at block 1."""
    from engram_sdk.model import get_preset

    per_head = max(101, int(table_params / 64 / 16))  # 2 orders x 8 heads, 64 values a row
    if smoke:  # a small vocabulary too: the head dominates a tiny model on a CPU
        shape = dict(
            tokenizer=None,
            vocab_size=SMOKE_VOCAB,
            dim=64,
            n_layers=3,
            inter_dim=128,
            n_heads=2,
            q_lora_rank=32,
        )
        shape |= dict(kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
    else:
        shape = dict(dim=3072, n_layers=32, inter_dim=8192, n_heads=24, q_lora_rank=1536)
        shape |= dict(kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128)
    return get_preset(
        "small",
        **shape,
        n_dense_layers=shape["n_layers"],
        hc_mult=1,
        engram_layer_ids=[1],
        engram_heads_per_ngram=8,
        engram_embed_per_ngram=512,
        engram_table_size=[per_head, per_head],
        max_seq_len=2048,
    )


SMOKE_VOCAB = 4096


def build_backbone(cfg, device: torch.device) -> torch.nn.Module:
    """The model in bf16 on ``device``, without Engram rows (each placement brings its own)."""
    from engram_sdk.model import build_model

    model = build_model(cfg, device="cpu", engram_tables=False)
    for param in model.parameters():  # parameters only: the rotary table stays complex64
        param.data = param.data.to(torch.bfloat16)
    return model.to(device)


def gpu_tables(model, device: torch.device, seed: int) -> dict:
    """bf16 rows ~ N(0, 0.02) for every Engram layer, on ``device``."""
    out = {}
    gen = torch.Generator(device).manual_seed(seed)
    for layer, missing in model.engram_tables().items():
        rows = torch.empty((missing.rows, missing.dim), dtype=torch.bfloat16, device=device)
        for start in range(0, missing.rows, 1 << 24):
            rows[start : start + (1 << 24)].normal_(0, 0.02, generator=gen)
        out[layer] = GpuRows(rows)
    return out


def host_copy(rows: torch.Tensor, huge_pages: bool = False) -> torch.Tensor:
    """A host copy of ``rows`` made chunk by chunk (never a second full-size temporary);
    ``huge_pages``: in anonymous memory advised for transparent huge pages (2 MiB pages:
    fewer address translations when the GPU reads it in place), else ``np.empty``'s."""
    array = huge_page_array(rows.shape) if huge_pages else np.empty(rows.shape, dtype=np.uint16)
    host = torch.from_numpy(array).view(torch.bfloat16)
    for start in range(0, len(rows), 1 << 26):
        host[start : start + (1 << 26)].copy_(rows[start : start + (1 << 26)])
    return host


def huge_page_array(shape: tuple[int, ...]) -> np.ndarray:
    """A uint16 array in anonymous memory advised ``MADV_HUGEPAGE`` before its first touch
    (the kernel backs it with 2 MiB pages where it can; /proc/self/smaps says how much)."""
    import ctypes
    import mmap

    nbytes = int(np.prod(shape)) * 2
    region = mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    array = np.frombuffer(region, dtype=np.uint16, count=int(np.prod(shape))).reshape(shape)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise(array.ctypes.data, nbytes, 14)  # MADV_HUGEPAGE (Linux)
    return array  # (the array keeps the mapping alive through its base)


def anon_huge_bytes() -> int:
    """Bytes of this process's anonymous memory in transparent huge pages (Linux)."""
    path = Path("/proc/self/smaps_rollup")
    if not path.exists():
        return 0
    for line in path.read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) * 1024
    return 0


def sequences(count: int, low: int, high: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` sequences of real text, lengths uniform in [low, high], consecutive text."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(low, high + 1, size=count)
    ids = real_text_ids(int(lengths.sum()) + count)
    cuts = np.cumsum(lengths + 1)
    return [ids[c - n - 1 : c] for c, n in zip(cuts, lengths, strict=True)]  # n inputs + 1 target


@dataclass
class Micro:
    """A padded micro-batch: inputs (B, L), targets (B, L) with -100 at pads, real tokens."""

    ids: torch.Tensor
    targets: torch.Tensor
    tokens: int


def padded(group: list[np.ndarray], width: int, pad: int, pin: bool) -> Micro:
    """Sequences (inputs + 1 target each) padded to ``width`` inputs."""
    ids = torch.full((len(group), width), pad, dtype=torch.int64)
    targets = torch.full((len(group), width), -100, dtype=torch.int64)
    for i, g in enumerate(group):
        ids[i, : len(g) - 1] = torch.from_numpy(g[:-1])
        targets[i, : len(g) - 1] = torch.from_numpy(g[1:])
    return Micro(ids.pin_memory() if pin else ids, targets, sum(len(g) - 1 for g in group))


def micro_batches(
    seqs: list[np.ndarray], budget: int, pad: int, pin: bool, bucket: int = 128
) -> list[Micro]:
    """Sequences sorted by length, padded to a multiple of ``bucket`` tokens, ``budget //
    width`` per batch: few distinct shapes, so every shape is warmed up before timing."""
    buckets: dict[int, list[np.ndarray]] = {}
    for s in sorted(seqs, key=len):
        buckets.setdefault(-(-(len(s) - 1) // bucket) * bucket, []).append(s)
    out = []
    for width, group in sorted(buckets.items()):
        rows = max(1, budget // width)
        out += [padded(group[i : i + rows], width, pad, pin) for i in range(0, len(group), rows)]
    return out


def decode_groups(seqs: list[np.ndarray], rows: int, pad: int, pin: bool) -> list[Micro]:
    """``rows`` sequences of similar length per group (decoding starts after the shortest)."""
    order = sorted(seqs, key=len)
    groups = [order[i : i + rows] for i in range(0, len(order), rows)]
    return [padded(g, len(g[-1]) - 1, pad, pin) for g in groups]


def load_hot_cache():
    """``engram_sdk.table_runtime.hot_cache`` from this checkout (the GPU machine's wheel has no
    ``table_runtime`` package until the runtime's ``__init__`` is merged)."""
    import importlib.util

    try:
        from engram_sdk.table_runtime import hot_cache

        return hot_cache
    except ImportError:
        pass
    path = Path(__file__).parents[1] / "engram_sdk" / "table_runtime" / "hot_cache.py"
    spec = importlib.util.spec_from_file_location("engram_hot_cache", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def write_rows(store, tables: dict[str, torch.Tensor]) -> None:
    """bf16 host rows into ``store``, one commit per 64 MiB."""
    for name, rows in tables.items():
        store.create_table(name, len(rows), rows.shape[1], "bfloat16")
        for start in range(0, len(rows), 1 << 19):
            part = rows[start : start + (1 << 19)]
            store.scatter(name, np.arange(start, start + len(part)), part)


def frequency_layouts(model, ids: np.ndarray) -> dict:
    """Per Engram layer, rows laid out by how often ``ids`` (one text) read them, each
    N-gram's heads side by side.

    (``engram_sdk.table_runtime.layout.layouts_from_text``, inlined: the package's
    ``__init__`` arrives with the runtime's branch, and the GPU machine installs a wheel.)
    """
    from engram_sdk.stores.row_layout import RowLayout

    found: dict[int, list[np.ndarray]] = {}
    context = model.hasher.context
    heads = model.config.engram_heads_per_ngram  # one order's heads, read together
    for start in range(0, len(ids), 1 << 16):
        chunk = torch.from_numpy(ids[start : start + (1 << 16)])[None]
        prefix = None
        if start:
            prefix = model.canonical.cpu()[torch.from_numpy(ids[start - context : start])][None]
        for layer, addresses in model.engram_addresses(chunk, prefix).items():
            found.setdefault(layer, []).append(addresses.cpu().numpy().reshape(-1, heads))
    tables = model.engram_tables()
    return {
        layer: RowLayout.by_group_frequency(tables[layer].rows, np.concatenate(parts))
        for layer, parts in found.items()
    }


def numa_line(rows: torch.Tensor) -> str:
    """Which NUMA nodes hold the host table's pages (/proc/self/numa_maps, summed over every
    mapping the table spans) and which node the GPU hangs off (sysfs, -1: not reported)."""
    low, high = rows.data_ptr(), rows.data_ptr() + rows.numel() * rows.element_size()
    starts = set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        begin, end = (int(x, 16) for x in line.split()[0].split("-"))
        if begin < high and end > low:
            starts.add(begin)
    nodes: dict[str, int] = {}
    numa_maps = Path("/proc/self/numa_maps")
    for line in numa_maps.read_text().splitlines() if numa_maps.exists() else ():
        fields = line.split()
        if int(fields[0], 16) in starts:
            for f in fields:
                if f[:1] == "N" and "=" in f:
                    node, count = f.split("=")
                    nodes[node] = nodes.get(node, 0) + int(count)
    where = " ".join(f"{k}={v}" for k, v in sorted(nodes.items())) or "unknown"
    gpu = "unknown"
    try:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        bdf = f"{props.pci_domain_id:04x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        gpu = Path(f"/sys/bus/pci/devices/{bdf}/numa_node").read_text().strip()
    except (AttributeError, OSError, RuntimeError, AssertionError):
        pass
    return (
        f"host table pages per NUMA node: {where} (over {len(starts)} mappings); "
        f"the GPU's NUMA node: {gpu}"
    )
