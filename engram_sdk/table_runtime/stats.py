"""What the table runtime fetched, and how long the model waited for it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class TableStats:
    """Counters shared by every table of one runtime (updated by concurrent fetch threads)."""

    rows_requested: int = 0
    unique_rows: int = 0  # rows read from the store (the requested rows when not deduplicated)
    bytes_moved: int = 0
    fetch_seconds: float = 0.0
    wait_seconds: float = 0.0
    prepare_seconds: float = 0.0  # the stepping thread's time in the runtime before the forward
    prepared_steps: int = 0  # steps whose time prepare_seconds holds
    fetches: int = 0
    reused_prefetches: int = 0
    cache_hit_rate: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def dedup_ratio(self) -> float:
        """Requested rows per row read from the store."""
        return self.rows_requested / max(self.unique_rows, 1)

    def add(self, **amounts: float) -> None:
        """Add to counters (fetch workers run concurrently)."""
        with self._lock:
            for key, value in amounts.items():
                setattr(self, key, getattr(self, key) + value)

    def reset(self) -> None:
        """Zero every counter, after a warm-up say (the cache hit rate is the store's own)."""
        with self._lock:
            self.rows_requested = self.unique_rows = self.bytes_moved = 0
            self.fetches = self.reused_prefetches = self.prepared_steps = 0
            self.fetch_seconds = self.wait_seconds = self.prepare_seconds = 0.0

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain numbers for reports."""
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return {**out, "dedup_ratio": self.dedup_ratio}
