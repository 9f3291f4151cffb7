"""One store interface, three backends: tables of rows and bytes records.

    python examples/stores_tables_and_records.py [FOLDER]

Writes an embedding table and a few records into dram://, lmdb:// and shards:// stores,
reads them back, converts one backend into another and verifies the copy.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from engram_sdk.stores import copy_store, open_store


def main() -> None:
    folder = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="engram-stores-"))
    )
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((10_000, 64)).astype(np.float16)
    for uri in ("dram://", f"lmdb://{folder / 'lmdb'}", f"shards://{folder / 'shards'}"):
        with open_store(uri, "w") as store:
            with store.transaction():  # all or nothing, durable when it returns
                store.create_table("engram.layer1", rows=10_000, dim=64, dtype="float16")
                store.scatter("engram.layer1", np.arange(10_000), emb)
                store.put_many("notes", [(b"user:1", b"alice"), (b"user:2", b"bob")])
            ids = np.array([7, 7, 9_999, 0])  # duplicates are fine
            assert np.array_equal(store.gather("engram.layer1", ids), emb[ids])
            print(uri, "->", dict(store.scan("notes", b"user:")), store.info().namespaces)
    with (
        open_store(f"lmdb://{folder / 'lmdb'}", "r") as src,
        open_store(f"shards://{folder / 'copy'}", "w") as dst,
    ):
        copy_store(src, dst, verify=True)
    with open_store(f"shards://{folder / 'copy'}", "r") as store:
        report = store.verify()
        print(
            f"converted lmdb -> shards and verified {report.checked_bytes:,} bytes: ok={report.ok}"
        )


if __name__ == "__main__":
    main()
