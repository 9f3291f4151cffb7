"""Pydantic descriptions of stores: tables, info and verification reports."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

STORE_FORMAT_VERSION = 1
DType = Literal["float32", "float16", "bfloat16", "int8"]

#: numpy dtype each row dtype is stored as (bfloat16 keeps its raw bits in uint16)
STORAGE_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(np.uint16),
    "int8": np.dtype(np.int8),
}


class TableSpec(BaseModel):
    """A table of ``rows`` fixed-width rows of ``dim`` values of ``dtype``."""

    model_config = ConfigDict(frozen=True)

    name: str
    rows: int = Field(ge=0)
    dim: int = Field(ge=1)
    dtype: DType = "float32"

    @property
    def storage_dtype(self) -> np.dtype:
        """numpy dtype of the stored values."""
        return STORAGE_DTYPES[self.dtype]

    @property
    def row_bytes(self) -> int:
        """Bytes of one row."""
        return self.dim * self.storage_dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the whole table."""
        return self.rows * self.row_bytes

    def torch_dtype(self):
        """torch dtype of this table's values."""
        import torch

        return {
            "float32": torch.float32,
            "float16": torch.float16,
            "bfloat16": torch.bfloat16,
            "int8": torch.int8,
        }[self.dtype]


class StoreInfo(BaseModel):
    """What ``Store.info()`` reports."""

    uri: str
    backend: str
    mode: str
    format_version: int = STORE_FORMAT_VERSION
    tables: list[TableSpec] = []
    namespaces: dict[str, int] = {}
    #: bytes of every table's rows (as stored, uncompressed)
    table_bytes: int = 0
    #: bytes of every record's key and value
    record_bytes: int = 0
    bytes_on_disk: int | None = None

    @property
    def records(self) -> int:
        """Records in every namespace."""
        return sum(self.namespaces.values())


class Problem(BaseModel):
    """One thing ``verify`` found wrong."""

    file: str
    offset: int | None = None
    message: str


class VerifyReport(BaseModel):
    """Result of ``Store.verify()``."""

    uri: str
    checked_bytes: int = 0
    checked_files: int = 0
    checked_records: int = 0
    problems: list[Problem] = []

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems
