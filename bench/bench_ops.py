"""The cost of a shared rate limit (issue 18): authenticated requests/s through one `inferline serve` process
on 4 keep-alive loopback connections, with and without an `embeddings_requests` limit configured for the
tenant. The request is a trivial `POST /v2/ai/openai/embeddings` with an empty body: the key check and the
limit's admission (one upsert into `rate_counters`) run, then the 422 for the missing fields, so no model work
hides the counter's cost.

Always on a SQLite file; also on PostgreSQL, in the same run, when `INFERLINE_BENCH_PG_URL` (the variable
`bench_search` reads; `BENCH_DATABASE_URL` is read as well) names a PostgreSQL server (e.g. the URL
`scripts/postgres.sh` prints): the benchmark creates its own database there and drops it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import BENCH_KEY, Row, pick, server_process
from inferline.keys import ApiKeyService
from inferline.ops.limits import LimitService
from inferline.stores.db import Database

SECONDS = pick(5.0, 0.5)
ROUNDS = pick(3, 1)
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


@contextmanager
def _postgres(server_url: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server of `server_url`, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(server_url)
    name = f"inferline_bench_ops_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _measure(url: str) -> tuple[float, float]:
    """(req/s with the limit configured, req/s without): the best of `ROUNDS` rounds on one server process
    over the database `url`, the two alternating so that both see the same load on a shared machine."""
    with server_process({"INFERLINE_DATABASE_URL": url, "INFERLINE_EMBEDDED_WORKER": "false"}) as (server, _):
        post_rate(server, SECONDS / 5)  # warm up
        db = Database(url)
        limits = LimitService(db)
        tenant = ApiKeyService(db).authenticate(BENCH_KEY).tenant_id
        limited, free = 0.0, 0.0
        try:
            for _ in range(ROUNDS):
                limits.delete(tenant)
                time.sleep(1.2)  # the server re-reads limits at most once a second
                free = max(free, post_rate(server, SECONDS))
                limits.set(tenant, embeddings_requests=10**9, window_seconds=60)
                time.sleep(1.2)
                limited = max(limited, post_rate(server, SECONDS))
        finally:
            db.dispose()
        return limited, free


def run() -> list[Row]:
    label = "the same requests, no limit configured"
    name = "authenticated trivial POST, requests-per-minute limit ({} counter)"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        limited, free = _measure(f"sqlite:///{Path(tmp) / 'ops.db'}")
        rows.append(Row(name.format("sqlite"), limited, free, "req/s", label))
    server_url = os.environ.get("INFERLINE_BENCH_PG_URL") or os.environ.get("BENCH_DATABASE_URL", "")
    if server_url.startswith("postgresql"):
        with _postgres(server_url) as url:
            limited, free = _measure(url)
        rows.append(Row(name.format("postgresql"), limited, free, "req/s", label))
    return rows
