"""What a store does with damage: every corruption is a named error, never a wrong answer.

    python examples/stores_integrity.py [FOLDER]

Writes a small lmdb:// store, flips one byte inside a stored row, then shows the typed error
(its ``path``, ``offset`` and ``expected`` fields), what ``verify`` reports, a savepoint
(a nested transaction that fails undoes only its own writes) and the writer lock.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from engram_sdk.stores import StoreCorruptError, StoreLockedError, open_store


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="engram-"))
    uri = f"lmdb://{folder / 'store'}"
    rows = np.arange(4096 * 256, dtype=np.float32).reshape(4096, 256)  # 4 blocks of 1 MiB
    with open_store(uri, "w") as store:
        store.create_table("t", 4096, 256)
        with store.transaction():
            store.scatter("t", np.arange(4096), rows)
            store.put("notes", b"kept", b"yes")
            try:
                with store.transaction():  # a savepoint
                    store.put("notes", b"dropped", b"no")
                    raise RuntimeError("the inner block fails")
            except RuntimeError:
                pass
        print("records after the savepoint rolled back:", dict(store.scan("notes")))
        try:
            open_store(uri, "a")
        except StoreLockedError as exc:
            print("a second writer:", exc)

    data = folder / "store" / "data.mdb"
    raw = bytearray(data.read_bytes())
    raw[raw.find(rows[3000].tobytes()) + 5] ^= 0x08  # one bit of row 3000
    data.write_bytes(bytes(raw))

    with open_store(uri, "r") as store:
        print("row 0 is fine:", store.gather("t", [0])[0][:4])
        try:
            store.gather("t", [3000])
        except StoreCorruptError as exc:
            print(f"row 3000: {type(exc).__name__}: path={exc.path} expected={exc.expected}")
        report = store.verify()
        for problem in report.problems:
            print("verify:", problem.file, problem.message)
    print("`engram store verify", uri + "` exits 1 on this store.")


if __name__ == "__main__":
    main()
