"""Model listing and the cost of one authenticated request.

* authenticated requests/s through an `inferline serve` process (uvicorn, one process) on 4 keep-alive
  loopback connections, driven by a minimal raw-socket client (`common.hammer`) so the figure is the server's
  (goal: at least 2,000/s), beside `/health` (no auth, no database) on the same server; with the server's CPU
  time per request;
* the list's own work per request with its per-tenant cache vs without it (a registry read, file checks and a
  fine-tunes query on every request, as before the cache).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import BENCH_KEY, Row, hammer, live_server, pick, server_process

N = pick(300, 20)
SECONDS = pick(5.0, 0.5)


def _rate(call: Callable[[], object], n: int) -> float:
    call()
    started = time.perf_counter()
    for _ in range(n):
        call()
    return n / (time.perf_counter() - started)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _served(url: str, pid: int, path: str, headers: dict[str, str]) -> tuple[float, float]:
    """(requests/s, server CPU µs per request) of `GET path`, best of 3 runs of `SECONDS`."""
    hammer(url, path, headers, SECONDS / 5)  # warm up
    best = (0.0, 0.0)
    for _ in range(pick(3, 1)):
        cpu, started = _cpu_seconds(pid), time.perf_counter()
        rate = hammer(url, path, headers, SECONDS)
        requests = rate * (time.perf_counter() - started)
        best = max(best, (rate, (_cpu_seconds(pid) - cpu) / max(requests, 1) * 1e6))
    return best


def run() -> list[Row]:
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    with live_server() as (_, container):
        tenant = container.keys.authenticate(BENCH_KEY).tenant_id
        models, tunes = container.models, container.fine_tuning

        def cached() -> object:
            container.keys.authenticate(BENCH_KEY)
            return [*models.list_metadata(tenant), *tunes.model_metadata(tenant)]

        def uncached() -> object:  # what every request did before the per-tenant cache
            container.keys.authenticate(BENCH_KEY)
            return [*models._list_metadata(tenant), *tunes._model_metadata(tenant)]

        in_process = _rate(cached, N)
        without_cache = _rate(uncached, N)
    with server_process() as (server, pid):
        listed, listed_cpu = _served(server, pid, "/v2/ai/openai/models", headers)
        health, health_cpu = _served(server, pid, "/health", {})
    same = "GET /health (no auth, no database), same server"
    return [
        Row("authenticated GET /v2/ai/openai/models, 1 uvicorn process (goal >= 2,000)", listed, health,
            "req/s", same),
        Row("  server CPU per request (models vs /health)", listed_cpu, health_cpu, "µs", same, False),
        Row("models list work per request, per-tenant cache", 1e6 / in_process, 1e6 / without_cache, "µs",
            "without the cache (registry, files, fine-tunes query)", False),
    ]  # fmt: skip
