"""Load: concurrent chat and similarity-search clients against one inferline server process, on loopback.

An `inferline serve` process (test profile: SmolLM2-135M chat, MiniLM embeddings) holds `CHAT_CLIENTS` chat
clients (`POST /v2/ai/chat/completions`, 16 new tokens) and `SEARCH_CLIENTS` search clients
(`POST /v2/ai/embeddings/similarity-search` over an embedded bucket) for `SECONDS` seconds, every client
sending its next request as soon as the previous one is answered. It reports, per client kind, median and p95
latency, throughput and error rate (non-2xx or transport error; 429 counts as an error too). The baseline is
the same request sent by a single client alone, on the same server, in the same run.

Bounded in time and count, loopback only. `INFERLINE_LOAD_SECONDS`, `INFERLINE_LOAD_CHAT`,
`INFERLINE_LOAD_SEARCH` and `INFERLINE_LOAD_DATABASE_URL` (e.g. from scripts/postgres.sh) adjust it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field

import boto3
import httpx
from botocore.config import Config

from bench.common import BENCH_KEY, Row, pick, server_process
from inferline.keys import s3_credentials

SECONDS = float(os.environ.get("INFERLINE_LOAD_SECONDS", pick("30", "1.5")))
CHAT_CLIENTS = int(os.environ.get("INFERLINE_LOAD_CHAT", pick("4", "2")))
SEARCH_CLIENTS = int(os.environ.get("INFERLINE_LOAD_SEARCH", pick("8", "2")))
DATABASE_URL = os.environ.get("INFERLINE_LOAD_DATABASE_URL", "")
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

    @property
    def count(self) -> int:
        return len(self.latencies) + self.errors

    def pct(self, q: float) -> float:
        return (
            statistics.quantiles(self.latencies, n=100)[int(q) - 1] * 1000 if len(self.latencies) > 1 else 0.0
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
    http: httpx.AsyncClient, path: str, bodies: list[dict], tally: Tally, until: float, budget: list[int]
) -> None:
    n = 0
    while time.monotonic() < until and budget[0] > 0:
        budget[0] -= 1
        body = bodies[n % len(bodies)]
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
    url: str, chat_clients: int, search_clients: int, seconds: float, key: str = BENCH_KEY
) -> tuple[Tally, Tally]:
    """Hold the clients for `seconds` (and at most MAX_REQUESTS requests); their tallies."""
    chat, search = Tally(), Tally()
    searches = [{"bucket_name": "load-kb", "query": q, "num_of_docs": 3} for q in QUERIES]
    limits = httpx.Limits(max_connections=chat_clients + search_clients + 4)
    headers = {"Authorization": f"Bearer {key}"}
    budget = [MAX_REQUESTS]
    async with httpx.AsyncClient(base_url=url + "/v2", headers=headers, timeout=120, limits=limits) as http:
        until = time.monotonic() + seconds
        await asyncio.gather(
            *[
                _client(http, "/ai/chat/completions", [CHAT], chat, until, budget)
                for _ in range(chat_clients)
            ],
            *[
                _client(http, "/ai/embeddings/similarity-search", searches, search, until, budget)
                for _ in range(search_clients)
            ],
        )
    return chat, search


def _rows(label: str, loaded: Tally, alone: Tally, seconds: float, alone_seconds: float) -> list[Row]:
    kind = label.split(",")[0]
    base = f"1 {kind} client alone"
    return [
        Row(f"{label}: p50 latency", loaded.pct(50), alone.pct(50), "ms", base, False),
        Row(f"{label}: p95 latency", loaded.pct(95), alone.pct(95), "ms", base, False),
        Row(
            f"{label}: throughput",
            len(loaded.latencies) / seconds,
            len(alone.latencies) / alone_seconds,
            "req/s",
            base,
        ),
        Row(
            f"{label}: error rate",
            100 * loaded.errors / max(1, loaded.count),
            100 * alone.errors / max(1, alone.count),
            "%",
            base,
            False,
        ),
    ]


def run() -> list[Row]:
    """Chat clients alone, search clients alone, then both at once; each next to one client alone."""
    warm = min(10.0, SECONDS / 3)
    env = {"INFERLINE_DATABASE_URL": DATABASE_URL} if DATABASE_URL else {}
    with server_process(env) as (url, _):
        prepare_bucket(url)
        asyncio.run(drive(url, 1, 1, pick(3, 1)))  # load the models
        chat_alone, _ = asyncio.run(drive(url, 1, 0, warm))
        _, search_alone = asyncio.run(drive(url, 0, 1, warm))
        chat_only, _ = asyncio.run(drive(url, CHAT_CLIENTS, 0, SECONDS))
        _, search_only = asyncio.run(drive(url, 0, SEARCH_CLIENTS, SECONDS))
        chat, search = asyncio.run(drive(url, CHAT_CLIENTS, SEARCH_CLIENTS, SECONDS))
    mixed = f"with {SEARCH_CLIENTS} search + {CHAT_CLIENTS} chat clients"
    return [
        *_rows(f"chat, {CHAT_CLIENTS} clients", chat_only, chat_alone, SECONDS, warm),
        *_rows(f"search, {SEARCH_CLIENTS} clients", search_only, search_alone, SECONDS, warm),
        *_rows(f"chat, {mixed}", chat, chat_alone, SECONDS, warm),
        *_rows(f"search, {mixed}", search, search_alone, SECONDS, warm),
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row.name:52} {row.value:10.2f} {row.baseline:10.2f} {row.unit:6} ({row.baseline_label})")
