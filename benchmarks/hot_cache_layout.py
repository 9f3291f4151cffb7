"""CPU benchmark: 4 KiB pages a batch touches with rows laid out by frequency vs today's order.

    python benchmarks/hot_cache_layout.py [--tokens 1000000] [--batch 4096] [--disk-rows-per-head 250000]

Real text (Python's standard library, tokenized and hashed by the project) is split in two:
the first ``--tokens`` count how often each row of one Engram layer is read (that count
builds the layout), the next ``--tokens`` are cut into batches of ``--batch`` tokens whose
distinct rows are looked up. Part 1 (the paper-sized table, 781M rows): distinct pages per
batch for 64-byte rows (today's ``small`` preset: 16 float32) and 128-byte rows (64 bf16),
in today's order and laid out: by row frequency, and by N-gram (the 8 heads of an order,
always read together, side by side; also with only the top 1M rows moved).
Part 2 (a real ``shards://`` table of ``--disk-rows-per-head`` x 16 rows of 64 bytes, written
in both orders): each batch's rows read after evicting the files from the page cache
(``POSIX_FADV_DONTNEED``), reads checked against the original order; time and bytes the
process read from the device. On a virtual disk backed by the host's cache, part 2's
figures understate what a real cold drive costs; part 1's page counts do not depend on it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from engram_sdk.stores import open_store
from engram_sdk.stores.laid_out import LaidOutStore
from engram_sdk.stores.row_layout import RowLayout, save_layout
from hot_cache import PAPER_TABLE_SIZE
from hot_cache_text import real_text_ids, table_addresses
from page_cache import evict, read_bytes

from engram_sdk.table_runtime.layout import layout_from_addresses, pages_touched


def part_pages(counted: np.ndarray, batches: list[np.ndarray], rows: int) -> list[str]:
    by_ngram = layout_from_addresses(counted, rows, group=8)  # an order's 8 heads side by side
    ids, counts = np.unique(counted, return_counts=True)
    by_row = RowLayout.by_frequency(rows, ids, counts)  # rows by their own counts, ties by id
    lines = [
        f"part 1: table of {rows} rows; layouts counted on {counted.shape[0]} tokens "
        f"({by_row.hot_rows} distinct rows); {len(batches)} batches of {len(batches[0]) // 16} tokens",
        "| layout | row bytes | pages per batch | / today's order | rows per page |",
        "|---|---|---|---|---|",
    ]
    distinct = sum(len(np.unique(b)) for b in batches)
    for row_bytes in (64, 128):
        plain = sum(pages_touched(b, row_bytes) for b in batches)
        lines.append(
            f"| today's order | {row_bytes} | {plain / len(batches):.0f} | 1.000 | {distinct / plain:.2f} |"
        )
        for label, layout in (
            ("by row count (ties by id)", by_row),
            ("by N-gram (heads side by side)", by_ngram),
            ("by N-gram, top 1M rows only", RowLayout(rows, by_ngram.hot[: 1 << 20])),
        ):
            laid = sum(pages_touched(layout.slots(b), row_bytes) for b in batches)
            lines.append(
                f"| {label} | {row_bytes} | {laid / len(batches):.0f} | {laid / plain:.3f} | "
                f"{distinct / laid:.2f} |"
            )
    return lines


def part_disk(
    counted_ids: np.ndarray, stream_ids: np.ndarray, per_head: int, batch: int
) -> list[str]:
    counted, rows = table_addresses(counted_ids, table_size=per_head)
    stream, _ = table_addresses(stream_ids, table_size=per_head)
    batches = [np.unique(stream[i : i + batch]) for i in range(0, len(stream), batch)]
    layout = layout_from_addresses(counted, rows, group=8)
    folder = Path(tempfile.mkdtemp(prefix="engram-layout-"))
    try:
        t = time.perf_counter()
        rng = np.random.default_rng(0)
        with open_store(f"shards://{folder / 'plain'}", "w", durable=False) as plain:
            plain.create_table("t", rows, 16)
            plain.fill(
                "t", lambda a, b: rng.standard_normal((b - a, 16), dtype=np.float32), 1 << 20
            )
            with open_store(f"shards://{folder / 'laid'}", "w", durable=False) as laid:
                save_layout(plain, "t", layout, into=laid, source="stdlib")
        print(f"part 2: wrote {rows} rows twice in {time.perf_counter() - t:.0f} s", flush=True)
        opts = dict(verify_reads=False, random_access=True)
        with (
            open_store(f"shards://{folder / 'plain'}", "r", **opts) as plain,
            LaidOutStore(open_store(f"shards://{folder / 'laid'}", "r", **opts)) as laid,
        ):
            seconds, device = (
                {"today's order": 0.0, "laid out": 0.0},
                {"today's order": 0, "laid out": 0},
            )
            readers = {
                "today's order": lambda i: plain.gather("t", i),
                "laid out": lambda i: laid.gather("t", i),
            }
            for ids in batches:
                got = {}
                for label, read in readers.items():
                    evict(folder)
                    before, start = read_bytes(), time.perf_counter()
                    got[label] = read(ids)
                    seconds[label] += time.perf_counter() - start
                    device[label] += read_bytes() - before
                if got["laid out"].tobytes() != got["today's order"].tobytes():
                    raise AssertionError("laid-out rows differ from the original rows")
        base = seconds["today's order"]
        lines = [
            f"part 2: shards table of {rows} rows x 64 B, {len(batches)} batches of {batch} tokens, "
            "files evicted before every read",
            "| order | read ms per batch | time / today's | MB read from the device per batch |",
            "|---|---|---|---|",
        ]
        for label in seconds:
            lines.append(
                f"| {label} | {seconds[label] / len(batches) * 1e3:.1f} | {seconds[label] / base:.3f} | "
                f"{device[label] / len(batches) / 1e6:.2f} |"
            )
        return lines
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--disk-rows-per-head", type=int, default=250_000)
    ap.add_argument("--disk-batches", type=int, default=20)
    ap.add_argument("--out", default=None, help="also write the tables as Markdown here")
    args = ap.parse_args()
    ids = real_text_ids(args.tokens * 2)
    counted_ids, stream_ids = ids[: args.tokens], ids[args.tokens :]
    counted, rows = table_addresses(counted_ids, table_size=PAPER_TABLE_SIZE)
    stream, _ = table_addresses(stream_ids, table_size=PAPER_TABLE_SIZE)
    batches = [stream[i : i + args.batch].reshape(-1) for i in range(0, len(stream), args.batch)]
    lines = part_pages(counted, batches, rows)
    print("\n".join(lines), flush=True)
    if args.disk_rows_per_head:
        disk_stream = stream_ids[: args.disk_batches * args.batch]
        lines += ["", *part_disk(counted_ids, disk_stream, args.disk_rows_per_head, args.batch)]
        print("\n".join(lines[-5:]), flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
