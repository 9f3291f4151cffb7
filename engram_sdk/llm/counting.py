"""Prompt sizes from cached per-message counts, so a turn never re-tokenizes the whole history.

A chat template wraps each message in a few tokens that depend on its role, plus a fixed
head (a default system prompt, a generation prompt). :class:`PromptCounter` measures those
once per backend and counts each message's text once (an LRU cache keyed by the text), so
the size of a rendered conversation is a sum. The sum is an estimate: tokens can merge
across a message's edges, so callers add :meth:`PromptCounter.margin` and count the rendered
prompt exactly only when the estimate comes that close to the window. Templates whose wrapper
cannot be measured (ones that refuse the probe conversations) are counted exactly.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence

from engram_sdk.llm.base import Backend, Message

PROBE = "a"


class PromptCounter:
    """Estimated tokens of rendered messages for one backend."""

    def __init__(self, backend: Backend, *, cache_size: int = 8192) -> None:
        self.backend = backend
        self.cache_size = cache_size
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self.fixed, self.per_role = self._measure()

    @property
    def exact_only(self) -> bool:
        """True when the template's wrapper could not be measured."""
        return not self.per_role

    def text(self, text: str) -> int:
        """Tokens of ``text`` (cached)."""
        with self._lock:
            found = self._cache.get(text)
            if found is not None:
                self._cache.move_to_end(text)
                return found
        n = self.backend.count_tokens(text)
        with self._lock:
            self._cache[text] = n
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return n

    def message(self, message: Message) -> int:
        """Tokens one message adds to a rendered prompt (its text and its role's wrapper)."""
        wrapper = self.per_role.get(message["role"], max(self.per_role.values(), default=0))
        return wrapper + self.text(message["content"])

    def estimate(self, messages: Sequence[Message]) -> int:
        """Tokens of ``render(messages)``, give or take :meth:`margin`."""
        if self.exact_only:
            return self.exact(messages)
        return self.fixed + sum(self.message(m) for m in messages)

    def exact(self, messages: Sequence[Message]) -> int:
        """Tokens of ``render(messages)``, counted."""
        return self.backend.count_tokens(self.backend.render(messages))

    def margin(self, n_messages: int) -> int:
        """How far an estimate may fall short: two tokens per message edge, and a few more."""
        return 0 if self.exact_only else 8 + 2 * n_messages

    def _measure(self) -> tuple[int, dict[str, int]]:
        def cost(roles: Sequence[str]) -> int:
            return self.exact([{"role": r, "content": PROBE} for r in roles])

        probe = self.backend.count_tokens(PROBE)
        try:
            one = cost(["user"])
            two = cost(["user", "assistant"])
            three = cost(["user", "assistant", "user"])
            with_system = cost(["system", "user"])
            system_later = cost(["user", "system"])
        except Exception:  # a template that refuses a probe conversation: count exactly
            return 0, {}
        per_role = {
            "user": three - two - probe,
            "assistant": two - one - probe,
            # a first system message can take the place of a template's default system
            # prompt (costing less than its wrapper); a later one adds its whole wrapper
            "system": max(0, with_system - one - probe, system_later - one - probe),
        }
        per_role["developer"] = per_role["system"]
        per_role["tool"] = max(per_role.values())
        fixed = one - per_role["user"] - probe
        if min(per_role.values()) < 0 or fixed < 0:
            return 0, {}
        return fixed, per_role


_COUNTERS: weakref.WeakKeyDictionary[Backend, PromptCounter] = weakref.WeakKeyDictionary()
_COUNTERS_LOCK = threading.Lock()


def counter_for(backend: Backend) -> PromptCounter:
    """The shared :class:`PromptCounter` of ``backend``."""
    with _COUNTERS_LOCK:
        found = _COUNTERS.get(backend)
        if found is None:
            found = _COUNTERS[backend] = PromptCounter(backend)
        return found
