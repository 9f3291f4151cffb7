"""Recalls kept between turns, valid while the memory's scope is unchanged.

A server asked the same question again (a retry, a regenerated reply, many users asking the
same thing) recalls the same passages, unless the scope changed in between. Each entry is
keyed by everything a recall depends on: the scope, its version
(:meth:`~engram_sdk.memory.Memory.scope_version`, which changes with every add or delete
committed by this process or another), the question, the budget, the prompt format, the
hits asked for and, for a session, which of its own turns the prompt still holds. The
version is read before the recall, so an entry is never older than its key: a change that
commits meanwhile gives the next lookup a new version, and so a miss.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from engram_sdk.memory import Memory

T = TypeVar("T")


class RecallCache:
    """At most ``max_entries`` recalls (least recently used out); thread-safe."""

    def __init__(self, *, max_entries: int = 2048) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Hashable, ...], object] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def recall(
        self, memory: Memory, scope: str, key: tuple[Hashable, ...], compute: Callable[[], T]
    ) -> T:
        """``compute()``'s result for ``key`` in ``scope`` of ``memory``, reused while the
        scope's version stays the same."""
        version = memory.scope_version(scope)
        if version is None:
            return compute()
        full = (id(memory), scope, version, *key)
        with self._lock:
            if full in self._entries:
                self._entries.move_to_end(full)
                self.hits += 1
                return self._entries[full]  # type: ignore[return-value]
            self.misses += 1
        got = compute()
        with self._lock:
            self._entries[full] = got
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return got
