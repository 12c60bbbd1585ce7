"""A small per-key cache with a time to live, for per-request reads that change rarely (the models list).

A value read from the database is served for `seconds`: a change made by another replica shows up here within
that time, a change made in this process at once (`forget`). A load that started before a `forget` does not
store its (possibly stale) value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
MAX_ENTRIES = 10_000  # past it the cache starts over (a bound, not an eviction policy)


class TTLCache(Generic[K, V]):
    """Values per key, each served for `seconds` after it was loaded."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._values: dict[K, tuple[float, V]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value of `key` if loaded less than `seconds` ago; no I/O, so safe on the event loop."""
        hit = self._values.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.seconds else None

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The cached value of `key`, else `load()` (stored unless `forget` ran meanwhile)."""
        hit = self.get(key)
        if hit is not None:
            return hit
        generation, started = self._generation, time.monotonic()
        value = load()
        with self._lock:
            if generation == self._generation:
                if len(self._values) >= MAX_ENTRIES:
                    self._values.clear()
                self._values[key] = (started, value)
        return value

    def forget(self) -> None:
        """Drop every value: the next read loads again."""
        with self._lock:
            self._generation += 1
            self._values.clear()
