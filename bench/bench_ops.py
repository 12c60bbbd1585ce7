"""The cost of a shared rate limit (issue 18): authenticated requests/s through one `inferline serve` process
(SQLite file database) on 4 keep-alive loopback connections, with and without an `embeddings_requests` limit
configured for the tenant. The request is a trivial `POST /v2/ai/openai/embeddings` with an empty body: the
key check and the limit's admission (one upsert into `rate_counters`) run, then the 422 for the missing
fields, so no model work hides the counter's cost. Set `BENCH_DATABASE_URL` to an empty PostgreSQL database
to measure there instead.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import BENCH_KEY, Row, pick, server_process
from inferline.keys import ApiKeyService
from inferline.ops.limits import LimitService
from inferline.stores.db import Database

SECONDS = pick(5.0, 0.5)
PATH = "/v2/ai/openai/embeddings"


def post_rate(url: str, seconds: float, connections: int = 4) -> float:
    """Requests/s of `POST PATH` with body `{}` (each answer must be the 422) over keep-alive connections."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {BENCH_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    ).encode()

    async def one(until: float) -> int:
        reader, writer = await asyncio.open_connection(host, port)
        done = 0
        try:
            while time.perf_counter() < until:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 422"):
                    raise RuntimeError(f"POST {PATH}: {head.splitlines()[0].decode()}")
                length = next(
                    int(value)
                    for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
                    if name.strip().lower() == b"content-length"
                )
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()
        return done

    async def main() -> float:
        started = time.perf_counter()
        done = await asyncio.gather(*(one(started + seconds) for _ in range(connections)))
        return sum(done) / (time.perf_counter() - started)

    return asyncio.run(main())


def _best(url: str) -> float:
    post_rate(url, SECONDS / 5)  # warm up
    return max(post_rate(url, SECONDS) for _ in range(pick(3, 1)))


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'ops.db'}"
        with server_process({"INFERLINE_DATABASE_URL": url, "INFERLINE_EMBEDDED_WORKER": "false"}) as (
            server,
            _,
        ):
            free = _best(server)
            db = Database(url)
            try:
                tenant = ApiKeyService(db).authenticate(BENCH_KEY).tenant_id
                LimitService(db).set(tenant, embeddings_requests=10**9, window_seconds=60)
            finally:
                db.dispose()
            time.sleep(1.2)  # the server re-reads limits at most once a second
            limited = _best(server)
    kind = url.split(":", 1)[0].split("+")[0]
    label = "the same requests, no limit configured"
    return [
        Row(
            f"authenticated trivial POST, requests-per-minute limit ({kind} counter)",
            limited,
            free,
            "req/s",
            label,
        )
    ]
