"""Model listing and the cost of one authenticated request.

* `GET /v2/ai/openai/models` through the API (httpx round trip, server in this process) vs the service called
  in-process;
* authenticated requests/s through an `inferline serve` process (uvicorn, one process) on 4 keep-alive
  loopback connections, driven by a minimal raw-socket client (`common.hammer`) so the figure is the server's:
  the model list vs the same work in-process (key check, model list, the tenant's fine-tunes), and `/health`
  (no auth, no database) as the server's floor; with the server's CPU time per request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx

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
    with live_server() as (url, container):
        with httpx.Client(base_url=url, headers=headers) as http:
            api = _rate(lambda: http.get("/ai/openai/models").raise_for_status(), N)
        direct = _rate(container.models.list_metadata, N)
        tenant = container.keys.authenticate(BENCH_KEY).tenant_id

        def handler_work() -> object:
            container.keys.authenticate(BENCH_KEY)
            return [*container.models.list_metadata(), *container.fine_tuning.model_metadata(tenant)]

        in_process = _rate(handler_work, N)
    with server_process() as (server, pid):
        models, models_cpu = _served(server, pid, "/v2/ai/openai/models", headers)
        health, health_cpu = _served(server, pid, "/health", {})
    label = "the same work in-process (key, models, fine-tunes)"
    same = "authenticated /v2/ai/openai/models, same server"
    return [
        Row("GET /v2/ai/openai/models", api, direct, "req/s", "ModelService in-process"),
        Row("authenticated GET /v2/ai/openai/models, 1 uvicorn process", models, in_process, "req/s", label),
        Row("  server CPU per request (models)", models_cpu, 1e6 / in_process, "µs", label, False),
        Row("GET /health (no auth, no database), 1 uvicorn process", health, models, "req/s", same),
        Row("  server CPU per request (/health)", health_cpu, models_cpu, "µs", same, False),
    ]
