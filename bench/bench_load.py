"""Load: concurrent chat, similarity-search and mixed clients against one inferline server, on loopback.

An `inferline serve` process (test profile: SmolLM2-135M chat, MiniLM embeddings) is held by 1, 4 and 16
clients of each kind for `SECONDS` seconds per scenario, every client sending its next request as soon as the
previous one is answered: chat (`POST /v2/ai/chat/completions`, 16 new tokens), search
(`POST /v2/ai/embeddings/similarity-search` over an embedded bucket) and mixed (each client alternates a chat
and a search request; the two kinds are reported apart). Per scenario: throughput, p50 and p95 latency and
error rate (non-2xx or transport error; 429 counts as an error too); the baseline is the same kind at one
client, in the same run. Then the fairness scenario: `CHAT_CLIENTS` chat and `SEARCH_CLIENTS` search clients
at once, each kind next to its one client alone. `readme_table` renders these rows as the README's Load table
(`bench/run.py --write-docs` regenerates it).

Bounded in time and count, loopback only. `INFERLINE_LOAD_SECONDS`, `INFERLINE_LOAD_CHAT`,
`INFERLINE_LOAD_SEARCH`, `INFERLINE_LOAD_DATABASE_URL` (e.g. from scripts/postgres.sh) and
`INFERLINE_LOAD_CHAT_THREADS` (the server's chat threads; on a machine busy with other work, llama.cpp's
threads wait on each other for whole time slices, and one thread is many times faster) adjust it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
from botocore.config import Config

from bench.common import BENCH_KEY, Row, pick, server_process
from inferline.keys import s3_credentials

SECONDS = float(os.environ.get("INFERLINE_LOAD_SECONDS", pick("15", "1.5")))
CLIENTS = pick([1, 4, 16], [1, 4])  # clients per scenario
CHAT_CLIENTS = int(os.environ.get("INFERLINE_LOAD_CHAT", pick("4", "2")))
SEARCH_CLIENTS = int(os.environ.get("INFERLINE_LOAD_SEARCH", pick("20", "2")))
DATABASE_URL = os.environ.get("INFERLINE_LOAD_DATABASE_URL", "")
CHAT_THREADS = os.environ.get("INFERLINE_LOAD_CHAT_THREADS", "")  # the server's INFERLINE_CHAT_THREADS if set
THREADS_ROW = "server chat threads (INFERLINE_CHAT_THREADS, 0: its default)"
MAX_REQUESTS = 20_000  # a hard bound on the whole run, whatever the speed
CHAT = {
    "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "messages": [{"role": "user", "content": "Name three uses of a harbour crane."}],
    "max_tokens": 16,
    "temperature": 0,
}
TOPICS = ["harbour cranes", "orbital mechanics", "sourdough baking", "glacier melt", "jazz harmony"]
QUERIES = [
    "how do cranes lift containers",
    "bread with wild yeast",
    "ice sheets retreating",
    "chord voicings",
]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0  # wall time of the run, until its last answer

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    @property
    def count(self) -> int:
        return len(self.latencies) + self.errors

    def pct(self, q: float) -> float:
        return (
            statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1] * 1000
            if len(self.latencies) > 1
            else 0.0
        )


def prepare_bucket(url: str, key: str = BENCH_KEY) -> None:
    """A bucket of five short documents, embedded, for the search clients (`url` without `/v2`)."""
    access_key_id, secret = s3_credentials(key)  # S3 signs with the key's S3 credentials, not the key
    s3 = boto3.client(
        "s3",
        endpoint_url=url + "/s3",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    s3.create_bucket(Bucket="load-kb")
    for topic in TOPICS:
        body = "\n".join(
            f"Fact {i} about {topic}: detail {i * 13 % 97} of the {topic} study." for i in range(40)
        )
        s3.put_object(Bucket="load-kb", Key=f"{topic}.txt", Body=body.encode())
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url + "/v2", headers=headers, timeout=120) as http:
        task = http.post("/ai/embeddings", json={"bucket_name": "load-kb"}).json()["data"]["task_id"]
        deadline = time.monotonic() + 300
        while http.get(f"/ai/embeddings/{task}").json()["data"]["status"] not in ("success", "failure"):
            if time.monotonic() > deadline:
                raise RuntimeError("the load test bucket was not embedded in time")
            time.sleep(0.3)


async def _client(
    http: httpx.AsyncClient,
    requests: list[tuple[str, dict, Tally]],
    until: float,
    budget: list[int],
    first: int = 0,
) -> None:
    """Send `requests` in turn (path, body, tally), each once the last is answered, until `until`."""
    n = first
    while time.monotonic() < until and budget[0] > 0:
        budget[0] -= 1
        path, body, tally = requests[n % len(requests)]
        n += 1
        started = time.perf_counter()
        try:
            response = await http.post(path, json=body)
            ok = response.status_code < 300
        except httpx.HTTPError:
            ok = False
        if ok:
            tally.latencies.append(time.perf_counter() - started)
        else:
            tally.errors += 1


async def drive(
    url: str,
    chat_clients: int,
    search_clients: int,
    seconds: float,
    key: str = BENCH_KEY,
    mixed_clients: int = 0,
) -> tuple[Tally, Tally]:
    """Hold the clients for `seconds` (and at most MAX_REQUESTS requests); the chat and search tallies.
    A mixed client alternates a chat and a search request (half of them start with search)."""
    chat, search = Tally(), Tally()
    chats = [("/ai/chat/completions", CHAT, chat)]
    searches = [
        ("/ai/embeddings/similarity-search", {"bucket_name": "load-kb", "query": q, "num_of_docs": 3}, search)
        for q in QUERIES
    ]
    mixed = [r for pair in zip(chats * len(searches), searches, strict=True) for r in pair]
    clients = chat_clients + search_clients + mixed_clients
    limits = httpx.Limits(max_connections=clients + 4)
    headers = {"Authorization": f"Bearer {key}"}
    budget = [MAX_REQUESTS]
    async with httpx.AsyncClient(base_url=url + "/v2", headers=headers, timeout=300, limits=limits) as http:
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            *[_client(http, chats, until, budget) for _ in range(chat_clients)],
            *[_client(http, searches, until, budget, i) for i in range(search_clients)],
            *[_client(http, mixed, until, budget, i) for i in range(mixed_clients)],
        )
    chat.seconds = search.seconds = time.monotonic() - started
    return chat, search


METRICS = ("throughput", "p50 latency", "p95 latency", "error rate")


def _rows(label: str, loaded: Tally, alone: Tally, base: str) -> list[Row]:
    return [
        Row(f"{label}: throughput", loaded.throughput, alone.throughput, "req/s", base),
        Row(f"{label}: p50 latency", loaded.pct(50), alone.pct(50), "ms", base, False),
        Row(f"{label}: p95 latency", loaded.pct(95), alone.pct(95), "ms", base, False),
        Row(
            f"{label}: error rate",
            100 * loaded.errors / max(1, loaded.count),
            100 * alone.errors / max(1, alone.count),
            "%",
            base,
            False,
        ),
    ]


def _clients(n: int) -> str:
    return f"{n} client" + ("" if n == 1 else "s")


def run() -> list[Row]:
    """Chat, search and mixed at each client count (baseline: the same kind at one client), then fairness."""
    env = {"INFERLINE_DATABASE_URL": DATABASE_URL} if DATABASE_URL else {}
    if CHAT_THREADS:
        env["INFERLINE_CHAT_THREADS"] = CHAT_THREADS
    rows = [Row(THREADS_ROW, float(CHAT_THREADS or 0), 0.0, "threads", "")]
    with server_process(env) as (url, _):
        prepare_bucket(url)
        asyncio.run(drive(url, 1, 1, pick(3, 1)))  # load the models
        one: dict[str, Tally] = {}
        for n in CLIENTS:
            chat, _ = asyncio.run(drive(url, n, 0, SECONDS))
            _, search = asyncio.run(drive(url, 0, n, SECONDS))
            mixed_chat, mixed_search = asyncio.run(drive(url, 0, 0, SECONDS, mixed_clients=n))
            measured = {
                "chat": chat,
                "search": search,
                "mixed: chat requests": mixed_chat,
                "mixed: search requests": mixed_search,
            }
            one = one or measured
            for kind, tally in measured.items():
                rows += _rows(f"{kind}, {_clients(n)}", tally, one[kind], f"{kind}, 1 client")
        chat, search = asyncio.run(drive(url, CHAT_CLIENTS, SEARCH_CLIENTS, SECONDS))
    mixed = f"with {SEARCH_CLIENTS} search + {CHAT_CLIENTS} chat clients"
    rows += _rows(f"chat, {mixed}", chat, one["chat"], "chat, 1 client")
    rows += _rows(f"search, {mixed}", search, one["search"], "search, 1 client")
    return rows


def readme_table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of `rows` (this module's, as `bench/run.py` records them): one line per scenario."""
    scenarios: dict[str, dict[str, float]] = {}
    for row in rows:
        label, _, metric = row["name"].rpartition(": ")
        if metric in METRICS:
            scenarios.setdefault(label, {})[metric] = row["value"]
    threads = next((int(r["value"]) for r in rows if r["name"] == THREADS_ROW), 0)
    out = [f"Chat threads: {threads or 'the default'} (`INFERLINE_CHAT_THREADS`).", ""] if threads else []
    out += ["| scenario | throughput | p50 | p95 | errors |", "|---|---:|---:|---:|---:|"]
    for label, m in scenarios.items():
        out.append(
            f"| {label} | {m.get('throughput', 0):,.1f} req/s | {_ms(m.get('p50 latency', 0))} | "
            f"{_ms(m.get('p95 latency', 0))} | {m.get('error rate', 0):.1f} % |"
        )
    return "\n".join(out) + "\n"


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


if __name__ == "__main__":
    for row in run():
        print(f"{row.name:52} {row.value:10.2f} {row.baseline:10.2f} {row.unit:6} ({row.baseline_label})")
