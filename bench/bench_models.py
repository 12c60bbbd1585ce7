"""Model listing: requests/s through the API (SDK round trip) vs the service called in-process."""

from __future__ import annotations

import time

import httpx

from bench.common import BENCH_KEY, Row, live_server

N = 300


def run() -> list[Row]:
    with live_server() as (url, container):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BENCH_KEY}"}) as http:
            http.get("/ai/openai/models").raise_for_status()
            started = time.perf_counter()
            for _ in range(N):
                http.get("/ai/openai/models")
            api = N / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(N):
            container.models.list_metadata()
        direct = N / (time.perf_counter() - started)
    return [Row("GET /v2/ai/openai/models", api, direct, "req/s", "ModelService in-process")]
