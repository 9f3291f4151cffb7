"""Input checks shared by every backend; all run before anything is written."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from engram_sdk.stores.errors import InputError
from engram_sdk.stores.models import STORAGE_DTYPES, TableSpec

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
MAX_KEY_BYTES = 400


def check_name(kind: str, name: str) -> str:
    """Table and namespace names: letters, digits, ``_ . -``, at most 128, no leading dot."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InputError(
            f"{kind} name {name!r} is invalid: use 1-128 letters, digits, '_', '.', '-' "
            f"(not starting with '.' or '-', no '..')"
        )
    return name


def check_key(key: Any) -> bytes:
    """Record keys are bytes of length 1..MAX_KEY_BYTES."""
    if not isinstance(key, bytes | bytearray | memoryview):
        raise InputError(f"record key must be bytes, got {type(key).__name__}")
    key = bytes(key)
    if not 0 < len(key) <= MAX_KEY_BYTES:
        raise InputError(f"record key must be 1..{MAX_KEY_BYTES} bytes, got {len(key)}")
    return key


def check_value(value: Any) -> bytes:
    """Record values are bytes."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InputError(f"record value must be bytes, got {type(value).__name__}")
    return bytes(value)


def check_row_ids(spec: TableSpec, row_ids: Any) -> np.ndarray:
    """Row ids as a 1-D int64 array inside ``[0, rows)``."""
    if _is_torch(row_ids):
        row_ids = row_ids.detach().cpu().numpy()
    ids = np.asarray(row_ids)
    if ids.ndim != 1:
        raise InputError(f"row ids for table {spec.name!r} must be 1-D, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"row ids for table {spec.name!r} must be integers, got {ids.dtype}")
    ids = ids.astype(np.int64, copy=False)
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= spec.rows:
            raise InputError(
                f"row id out of range for table {spec.name!r}: got [{lo}, {hi}], "
                f"expected [0, {spec.rows})"
            )
    return ids


def as_storage_array(spec: TableSpec, values: Any, n: int) -> np.ndarray:
    """Values (n, dim) as a C-contiguous array of the table's storage dtype."""
    if _is_torch(values):
        import torch

        want = spec.torch_dtype()
        if values.dtype != want:
            raise InputError(f"values for table {spec.name!r} must be {want}, got {values.dtype}")
        values = values.detach().cpu()
        if spec.dtype == "bfloat16":
            values = values.view(torch.int16)
        arr = values.numpy().view(spec.storage_dtype)
    else:
        arr = np.asarray(values)
        want = spec.storage_dtype
        if arr.dtype != want:
            hint = (
                " (bfloat16 rows are given as their raw uint16 bits)"
                if spec.dtype == "bfloat16"
                else ""
            )
            raise InputError(
                f"values for table {spec.name!r} must be {want}, got {arr.dtype}{hint}"
            )
    if arr.shape != (n, spec.dim):
        raise InputError(
            f"values for table {spec.name!r} must have shape ({n}, {spec.dim}), got {arr.shape}"
        )
    return np.ascontiguousarray(arr)


def output_view(spec: TableSpec, out: Any, n: int) -> np.ndarray:
    """A writable numpy view of a caller's output buffer (numpy or CPU torch tensor)."""
    if _is_torch(out):
        import torch

        if out.device.type != "cpu":
            raise InputError(f"out must be a CPU tensor (pinned is fine), got device {out.device}")
        if out.dtype != spec.torch_dtype():
            raise InputError(
                f"out for table {spec.name!r} must be {spec.torch_dtype()}, got {out.dtype}"
            )
        if not out.is_contiguous():
            raise InputError("out must be contiguous")
        out = out.detach()  # shares storage: filled in place even if it requires grad
        view = (out.view(torch.int16) if spec.dtype == "bfloat16" else out).numpy()
        view = view.view(spec.storage_dtype)
    else:
        view = out
        if not isinstance(view, np.ndarray) or view.dtype != spec.storage_dtype:
            raise InputError(f"out for table {spec.name!r} must be a {spec.storage_dtype} array")
        if not view.flags.writeable:
            raise InputError(f"out for table {spec.name!r} is read-only")
    if view.shape != (n, spec.dim):
        raise InputError(
            f"out for table {spec.name!r} must have shape ({n}, {spec.dim}), got {view.shape}"
        )
    return view


def check_dtype(dtype: str) -> str:
    """Known row dtypes."""
    if dtype not in STORAGE_DTYPES:
        raise InputError(
            f"dtype {dtype!r} is not supported; expected one of {sorted(STORAGE_DTYPES)}"
        )
    return dtype


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")
