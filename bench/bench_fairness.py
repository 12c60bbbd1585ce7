"""Fair sharing: chat latency and search throughput when `SEARCH_CLIENTS` similarity-search clients and
`CHAT_CLIENTS` chat clients hold one `inferline serve` process (test profile) at once, each kind next to the
same clients alone on the same server, in the same run.

Two servers run the same three phases (chat alone, search alone, both): the default policy (engines/cpu.py
`CpuShares`: a generation that starts while batch engines run decodes on the chat model's one-thread
context, `INFERLINE_CHAT_CONTENDED_THREADS=1`, and embedding batches pause `INFERLINE_BACKGROUND_YIELD`
times their duration while chat decodes), and the same server with both off. Goals (issue 16): with search
load, chat p95 at most twice its p95 alone (ratio ≥ 0.5) and search keeps ≥ 50 % of its throughput alone
(ratio ≥ 0.5). `INFERLINE_FAIRNESS_YIELD` sets the default server's yield ratio for a sweep.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import httpx

from bench.bench_load import prepare_bucket
from bench.common import BENCH_KEY, Row, pick, server_process

SECONDS = float(os.environ.get("INFERLINE_FAIRNESS_SECONDS", pick("20", "1.5")))
CHAT_CLIENTS = pick(4, 1)
SEARCH_CLIENTS = pick(20, 2)
YIELD = os.environ.get("INFERLINE_FAIRNESS_YIELD")  # None: the server's default
DEFAULT = {"INFERLINE_BACKGROUND_YIELD": YIELD} if YIELD else {}
OFF = {"INFERLINE_BACKGROUND_YIELD": "0", "INFERLINE_CHAT_CONTENDED_THREADS": "0"}
CHAT = {
    "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "messages": [{"role": "user", "content": "Name three uses of a harbour crane."}],
    "max_tokens": 16,
    "temperature": 0,
}
QUERIES = [
    "how do cranes lift containers",
    "bread with wild yeast",
    "ice sheets retreating",
    "chord voicings",
]


async def _drive(url: str, chat_clients: int, search_clients: int, seconds: float) -> dict[str, list[float]]:
    """Latencies (s) of the answered requests per kind; any failure stops the run."""
    out: dict[str, list[float]] = {"chat": [], "search": []}
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    limits = httpx.Limits(max_connections=chat_clients + search_clients + 4)

    async def client(http: httpx.AsyncClient, kind: str, n: int, until: float) -> None:
        while time.monotonic() < until:
            if kind == "chat":
                path, body = "/ai/chat/completions", CHAT
            else:
                query = QUERIES[n % len(QUERIES)]
                path, body = "/ai/embeddings/similarity-search", {"bucket_name": "load-kb", "query": query}
            n += 1
            started = time.perf_counter()
            response = await http.post(path, json=body)
            response.raise_for_status()
            out[kind].append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=url + "/v2", headers=headers, timeout=300, limits=limits) as http:
        until = time.monotonic() + seconds
        await asyncio.gather(
            *[client(http, "chat", i, until) for i in range(chat_clients)],
            *[client(http, "search", i, until) for i in range(search_clients)],
        )
    return out


def p95(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=20)[-1] * 1000 if len(latencies) > 1 else latencies[0] * 1000


def _measure(env: dict[str, str]) -> tuple[float, float, float, float]:
    """(chat p95 ms loaded, alone; search req/s loaded, alone) on a server with `env`."""
    with server_process(env) as (url, _):
        prepare_bucket(url)
        asyncio.run(_drive(url, 1, 1, pick(3, 0.5)))  # loads both models
        chat_alone = asyncio.run(_drive(url, CHAT_CLIENTS, 0, SECONDS))["chat"]
        search_alone = asyncio.run(_drive(url, 0, SEARCH_CLIENTS, SECONDS))["search"]
        both = asyncio.run(_drive(url, CHAT_CLIENTS, SEARCH_CLIENTS, SECONDS))
    return p95(both["chat"]), p95(chat_alone), len(both["search"]) / SECONDS, len(search_alone) / SECONDS


def run() -> list[Row]:
    rows: list[Row] = []
    policy = f"default policy{f' (yield {YIELD}x)' if YIELD else ''}"
    for label, env in ((policy, DEFAULT), ("policy off", OFF)):
        chat_loaded, chat_alone, search_loaded, search_alone = _measure(env)
        mixed = f"{CHAT_CLIENTS} chat + {SEARCH_CLIENTS} search clients, {label}"
        rows += [
            Row(
                f"chat p95, {mixed}",
                chat_loaded,
                chat_alone,
                "ms",
                f"{CHAT_CLIENTS} chat clients alone, same server (goal: ratio ≥ 0.5)",
                higher_is_better=False,
            ),
            Row(
                f"search throughput, {mixed}",
                search_loaded,
                search_alone,
                "req/s",
                f"{SEARCH_CLIENTS} search clients alone, same server (goal: ratio ≥ 0.5)",
            ),
        ]
    return rows
