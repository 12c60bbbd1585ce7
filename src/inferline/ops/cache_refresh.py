"""`CacheRefresher`: keeps an API process's key and limit caches warm for the keys in use, and its models
registry while in use.

Both caches trust what they read for one second (`keys.AUTH_CACHE_SECONDS`, `limits.CACHE_SECONDS`), so
that a key revoked or a limit changed by another replica takes effect here within that time. Read on
demand, a key used less often than once a second (a voice agent's turn every few seconds) waited for two
database reads in worker threads on every request: ~1.4 ms of a chat's time to first token on the 2-core
machine. This thread re-reads the recently used entries every half lifetime, one query per cache, so a
key in use is always answered from memory and the one-second bound still holds (each refresh counts from
the moment its query started). Entries unused for `IDLE_SECONDS` are dropped instead. The models registry
(`REGISTRY_TTL_SECONDS`, read by every chat and embeddings request to resolve its model) is kept the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("inferline")
IDLE_SECONDS = 300.0  # a key unused this long is no longer refreshed (its next request reads it again)


class CacheRefresher:
    """Calls each of `refreshers` every `interval` seconds in a daemon thread until `stop()`."""

    def __init__(self, refreshers: list[Callable[[], None]], interval: float) -> None:
        self.refreshers = refreshers
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="cache-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for refresh in self.refreshers:
                try:
                    refresh()
                except Exception as exc:  # the request path reads the database itself meanwhile
                    log.warning("cache refresh failed: %s", exc)
