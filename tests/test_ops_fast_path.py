"""Issue 16: the limit check and usage metering stay off a request's latency path. A tenant without limits is
admitted from the limits cache (no worker thread, no counter rows), a limit set through the admin API applies
at once in this process and within the cache's TTL from another replica, and usage is tallied per process and
written by the background writer, summing exactly over concurrent requests and flushed at a clean close."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import telnyx
from sqlalchemy import event, func, select

from inferline.ops.limits import LimitService
from inferline.ops.usage import UsageMeter
from inferline.stores.db import Database
from inferline.stores.ops_tables import RateCounter, UsageDaily
from tests.conftest import LiveServer

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _sdk(server: LiveServer, tenant: str) -> telnyx.Telnyx:
    _, key = server.container.keys.create(tenant)
    return telnyx.Telnyx(api_key=key, base_url=server.v2, _strict_response_validation=True, max_retries=0)


def _embed(sdk: telnyx.Telnyx, text: str = "fast path"):  # type: ignore[no-untyped-def]
    return sdk.ai.openai.embeddings.with_raw_response.create_embeddings(input=text, model=MINILM)


def _counter_rows(server: LiveServer, tenant: str) -> int:
    with server.container.db.session() as s:
        return int(s.scalar(select(func.count()).where(RateCounter.subject.contains(f":{tenant}:"))) or 0)


@pytest.fixture
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    _, key = server.container.keys.create("ops-fast-admin", scope="admin")
    with httpx.Client(base_url=server.v2, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        yield http


def test_unlimited_tenant_skips_the_limit_thread_and_an_admin_limit_applies_at_once(
    server: LiveServer, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = server.container.limits
    monkeypatch.setattr(limits, "cache_seconds", 3600.0)  # the cache stays warm however loaded the machine
    admitted: list[str] = []
    admit = limits.admit
    monkeypatch.setattr(limits, "admit", lambda p, c: admitted.append(p.tenant_id) or admit(p, c))
    sdk = _sdk(server, "ops-fast-unlimited")

    first = _embed(sdk)  # reads the (empty) limits into the cache
    assert first.parse().data and "x-ratelimit-limit-requests" not in first.headers
    admitted.clear()
    for _ in range(3):
        assert "x-ratelimit-limit-requests" not in _embed(sdk).headers
    assert admitted == []  # answered from the cache on the event loop, no counting in a thread
    assert _counter_rows(server, "ops-fast-unlimited") == 0

    put = admin.put("/admin/tenants/ops-fast-unlimited/limits", json={"embeddings_requests": 1000})
    assert put.status_code == 200, put.text
    limited = _embed(sdk)  # the process that changed the limit forgets its cached read at once
    assert limited.headers["x-ratelimit-limit-requests"] == "1000"
    assert admitted == ["ops-fast-unlimited"] and _counter_rows(server, "ops-fast-unlimited") == 1

    assert admin.delete("/admin/tenants/ops-fast-unlimited/limits").status_code == 200
    assert "x-ratelimit-limit-requests" not in _embed(sdk).headers


def test_a_limit_set_by_another_replica_applies_within_the_cache_ttl(server: LiveServer) -> None:
    sdk = _sdk(server, "ops-fast-replica")
    assert "x-ratelimit-limit-requests" not in _embed(sdk).headers  # cached: no limits
    other = Database(str(server.container.db.engine.url.render_as_string(hide_password=False)))
    try:
        LimitService(other).set("ops-fast-replica", embeddings_requests=500)
    finally:
        other.dispose()
    time.sleep(server.container.limits.cache_seconds)  # the documented bound: one cache TTL
    assert _embed(sdk).headers["x-ratelimit-limit-requests"] == "500"


def test_usage_of_concurrent_requests_is_written_by_the_batched_writer_and_sums_exactly(
    server: LiveServer,
) -> None:
    tenant = "ops-fast-usage"
    sdk = _sdk(server, tenant)
    writers: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if (
            "usage_daily" in statement
            and statement.lstrip().upper().startswith("INSERT")
            and tenant in str(parameters)
        ):
            writers.append(threading.current_thread().name)

    engine = server.container.db.engine
    event.listen(engine, "before_cursor_execute", spy)
    try:
        texts = [f"usage batch text number {i} " + "word " * (i % 7) for i in range(24)]
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda t: _embed(sdk, t).parse(), texts))
        expected = sum(r.usage.prompt_tokens for r in replies)
        deadline = time.monotonic() + 60
        while not writers and time.monotonic() < deadline:  # the writer flushes on its own
            time.sleep(0.1)
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert writers and set(writers) == {"usage-writer"}  # never written on a request's path

    rows = server.container.usage.report(tenant, by="tenant")
    assert {r["metric"]: r["quantity"] for r in rows} == {"embedding_tokens": expected}


def test_a_clean_close_writes_the_whole_tally(server: LiveServer) -> None:
    db, tenant = server.container.db, "ops-fast-close"
    meter = UsageMeter(db, flush_seconds=3600.0)  # never flushes on its own in this test

    def record(n: int) -> None:
        for _ in range(50):
            meter.record(tenant, f"key-{n % 2}", [("embedding_tokens", MINILM, 3)])

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.session() as s:
        assert s.scalar(select(func.count()).where(UsageDaily.tenant_id == tenant)) == 0
    meter.close()
    with db.session() as s:
        rows = s.execute(
            select(UsageDaily.key_id, UsageDaily.quantity).where(UsageDaily.tenant_id == tenant)
        ).all()
    assert sorted((k, float(q)) for k, q in rows) == [("key-0", 600.0), ("key-1", 600.0)]
    meter.record(tenant, "key-0", [("embedding_tokens", MINILM, 1)])  # after close: written at once
    assert UsageMeter(db).report(tenant, by="tenant")[0]["quantity"] == 1201


def test_limits_in_use_are_refreshed_in_the_background(server: LiveServer) -> None:
    """The limits of a key in use are re-read in one query by the refresh (`ops.cache_refresh`), so a request
    arriving after the cache time is still admitted from memory; a limit set by another replica shows up with
    the refresh, and entries unused for `idle_seconds` are dropped."""
    from inferline.keys import Principal

    limits = LimitService(server.container.db)
    active, idle = (
        Principal("ops-refresh", "key-a", "inference"),
        Principal("ops-refresh-idle", "k", "inference"),
    )
    assert limits.applicable(active) == [] and limits.applicable(idle) == []
    for key in list(limits._cache):
        limits._cache[key] = (limits._cache[key][0] - 10, limits._cache[key][1])  # as if read 10 s ago
    assert limits.cached(active) is None
    for key in [("ops-refresh-idle", ""), ("ops-refresh-idle", "k")]:
        limits._used[key] -= 1000
    limits.refresh(idle_seconds=300)
    assert limits.unlimited(active, "embeddings_requests")  # from memory again
    assert ("ops-refresh-idle", "") not in limits._cache

    other = Database(str(server.container.db.engine.url.render_as_string(hide_password=False)))
    try:
        LimitService(other).set("ops-refresh", embeddings_requests=7)
    finally:
        other.dispose()
    limits.refresh(idle_seconds=300)
    cached = limits.cached(active)
    assert cached is not None and [lim.embeddings_requests for lim in cached] == [7]
