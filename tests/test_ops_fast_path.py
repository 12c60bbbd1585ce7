"""Issue 16: the limit check and usage metering stay off a request's latency path. A tenant without limits is
admitted from the limits cache (no worker thread, no counter rows), a limit set through the admin API applies
at once in this process and within the cache's TTL from another replica, and usage is tallied per process and
written by the background writer, summing exactly over concurrent requests and flushed at a clean close."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import telnyx
from sqlalchemy import event, func, select

from inferline.errors import RateLimited
from inferline.ops.limits import CounterBusy, LimitService
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


class LoopRefusals(list[str]):
    """Why the event loop passed a count to a worker thread (`CounterBusy`), one reason per refusal."""

    def locked_only(self) -> bool:
        """True when each refusal was another writer holding the SQLite file: the session's server has
        writers of its own (a background job's progress, the usage writer), and the loop never waits for
        them. Any other reason means the loop could not count at all."""
        return all(reason == "database is locked" for reason in self)


def _loop_refusals(service: LimitService, monkeypatch: pytest.MonkeyPatch) -> LoopRefusals:
    """Records why `service` counted in a worker thread. The session's server shares it, so two of its own
    reasons must not fall in a test: its `NOW_EVERY` call count restarts (every 256th loop call goes to a
    thread: a checkpoint may be due), and its sweep of old counters (due once a minute) waits."""
    refusals = LoopRefusals()
    monkeypatch.setattr(service, "_now_calls", 0)
    monkeypatch.setattr(service, "_last_sweep", float("inf"))
    for name in ("admit_on_loop", "add_tokens_on_loop"):
        counted_on_loop = getattr(service, name)

        async def recording(*args: Any, _counted_on_loop: Any = counted_on_loop) -> Any:
            try:
                return await _counted_on_loop(*args)
            except CounterBusy as exc:
                refusals.append(str(exc))
                raise

        monkeypatch.setattr(service, name, recording)
    return refusals


def _limited(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, tenant: str, **limits: int
) -> tuple[telnyx.Telnyx, list[str], LoopRefusals]:
    """An SDK client of a new key of `tenant`, whose limits `limits` are set (a window that does not end
    during the test); the limits cache stays warm however loaded the machine; the list that each count
    made in a worker thread (`LimitService.admit`) adds its category to; and why the loop refused each."""
    service = server.container.limits
    monkeypatch.setattr(service, "cache_seconds", 3600.0)
    threaded: list[str] = []
    admit = service.admit
    monkeypatch.setattr(service, "admit", lambda p, c: threaded.append(c) or admit(p, c))
    sdk = _sdk(server, tenant)
    service.set(tenant, window_seconds=10**8, **limits)
    return sdk, threaded, _loop_refusals(service, monkeypatch)


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


def test_a_window_longer_than_a_day_keeps_its_count_through_the_sweep(server: LiveServer) -> None:
    """Defect: the sweep deleted every counter whose window started over a day ago, so a weekly limit's count
    went back to zero within its window and the limit was never reached."""
    from inferline.keys import Principal

    limits = LimitService(server.container.db)
    principal = Principal("ops-weekly", "key-w", "inference")
    limits.set("ops-weekly", embeddings_requests=2, window_seconds=10**8)  # a window started years ago
    assert limits.admit(principal, "embeddings")[0]["x-ratelimit-remaining-requests"] == "1"
    limits._last_sweep = 0.0  # a sweep is due at the next admission
    assert limits.admit(principal, "embeddings")[0]["x-ratelimit-remaining-requests"] == "0"
    limits._last_sweep = 0.0
    with pytest.raises(RateLimited):
        limits.admit(principal, "embeddings")
    old = int(time.time()) - 3 * 86_400  # a one-minute window that ended three days ago is swept
    with server.container.db.session() as s:
        s.add(RateCounter(subject="t:ops-minute-gone:embeddings:req", window_start=old - old % 60, count=5))
    limits.set("ops-weekly-minute", embeddings_requests=5)
    limits._last_sweep = 0.0
    limits.admit(Principal("ops-weekly-minute", "k", "inference"), "embeddings")
    with server.container.db.session() as s:
        assert s.get(RateCounter, ("t:ops-minute-gone:embeddings:req", old - old % 60)) is None


def test_a_limited_tenant_is_counted_on_the_event_loop_once_per_request(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop counts a limited request itself (`LimitService.admit_on_loop`: on a SQLite file at once,
    on PostgreSQL awaiting an async connection); the worker thread counts only what the loop cannot (here:
    the first request, whose limits were not cached). Each request counts once; the headers show the count."""
    tenant = "ops-fast-counted"
    sdk, threaded, refusals = _limited(server, monkeypatch, tenant, embeddings_requests=1000)
    assert _embed(sdk).headers["x-ratelimit-remaining-requests"] == "999"  # the limits are cached now
    threaded.clear()
    refusals.clear()
    remaining = [int(_embed(sdk).headers["x-ratelimit-remaining-requests"]) for _ in range(5)]
    assert remaining == [998, 997, 996, 995, 994]
    # counted from the event loop (SQLite: at once; PostgreSQL: awaited), or in a worker thread only where
    # another writer of the session's server held the SQLite file
    assert len(threaded) == len(refusals) < 5 and refusals.locked_only(), (threaded, refusals)
    with server.container.db.session() as s:
        counted = s.scalar(select(RateCounter.count).where(RateCounter.subject.contains(f":{tenant}:")))
    assert counted == 6


def test_a_token_limited_request_is_counted_and_its_tokens_added_from_the_event_loop(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a token limit too, the loop reads the tokens used and counts the request in one transaction, and
    adds a finished request's tokens itself (`LimitService.add_tokens_on_loop`): no worker thread, and the
    counters hold exactly the requests and the tokens the responses reported."""
    limits = server.container.limits
    monkeypatch.setattr(limits, "cache_seconds", 3600.0)
    refusals = _loop_refusals(limits, monkeypatch)
    threaded: list[str] = []
    admit, add_tokens = limits.admit, limits.add_tokens
    monkeypatch.setattr(limits, "admit", lambda p, c: threaded.append("admit") or admit(p, c))
    monkeypatch.setattr(
        limits, "add_tokens", lambda p, c, n: threaded.append("tokens") or add_tokens(p, c, n)
    )
    tenant = "ops-fast-tokens"
    sdk = _sdk(server, tenant)
    limits.set(tenant, embeddings_requests=1000, embeddings_tokens=100_000, window_seconds=10**8)

    def counters(tokens: int) -> dict[str, int]:
        """The tenant's counters, once the tokens counter reached `tokens` (added after each response)."""
        deadline = time.monotonic() + 10
        while True:
            with server.container.db.session() as s:
                query = select(RateCounter.subject, RateCounter.count)
                rows = dict(s.execute(query.where(RateCounter.subject.contains(f":{tenant}:"))).all())
            if rows.get(f"t:{tenant}:embeddings:tok") == tokens or time.monotonic() > deadline:
                return {str(k): int(v) for k, v in rows.items()}
            time.sleep(0.02)

    tokens = _embed(sdk, "the limits are read into the cache").parse().usage.prompt_tokens
    counters(tokens)
    threaded.clear()
    refusals.clear()
    for i in range(4):
        reply = _embed(sdk, f"counted from the loop, text {i} " + "word " * i)
        # at most the tokens counted so far (the previous request's may still be on their way)
        assert 100_000 - tokens <= int(reply.headers["x-ratelimit-remaining-tokens"]) < 100_000
        tokens += reply.parse().usage.prompt_tokens
    assert counters(tokens) == {f"t:{tenant}:embeddings:req": 5, f"t:{tenant}:embeddings:tok": tokens}
    # 8 counts on the loop, but where another writer of the session's server held the SQLite file
    assert len(threaded) == len(refusals) < 8 and refusals.locked_only(), (threaded, refusals)


def test_concurrent_limited_requests_each_get_their_own_count_while_another_writer_competes(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent limited requests, counted on the loop or, where it would wait, in worker threads (on SQLite
    another connection keeps taking the write lock meanwhile; on PostgreSQL more requests than the loop's
    connections): every request is answered, and each gets a count of its own, with none lost."""
    tenant = "ops-fast-concurrent"
    sdk, threaded, refusals = _limited(server, monkeypatch, tenant, embeddings_requests=100_000)
    assert _embed(sdk).headers["x-ratelimit-remaining-requests"] == "99999"
    threaded.clear()
    refusals.clear()
    stop = threading.Event()

    def compete() -> None:  # another writer on the SQLite file, holding its lock a millisecond at a time
        path = server.container.db.sqlite_file
        if path is None:
            return
        other = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            while not stop.is_set():
                other.execute("BEGIN IMMEDIATE")
                time.sleep(0.001)
                other.execute("COMMIT")
                time.sleep(0.002)
        finally:
            other.close()

    writer = threading.Thread(target=compete)
    writer.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda i: _embed(sdk, f"concurrent {i}"), range(160)))
    finally:
        stop.set()
        writer.join()
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in replies)
    assert remaining == list(range(99_999 - 160, 99_999))  # one count each, none lost or shared
    with server.container.db.session() as s:
        counted = s.scalar(select(RateCounter.count).where(RateCounter.subject.contains(f":{tenant}:")))
    assert counted == 161
    if server.container.db.sqlite_file:  # both ways were taken: the loop, and threads when it was locked
        assert 0 < len(threaded) < 160, len(threaded)
        assert len(refusals) == len(threaded) and refusals.locked_only(), refusals


def test_a_locked_database_sends_the_count_to_a_worker_thread_and_the_loop_serves_on(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another writer holds the SQLite file, the loop does not wait for it: the limited request is
    counted in a worker thread once the lock is gone (exactly once); other requests are served meanwhile."""
    path = server.container.db.sqlite_file
    if path is None:
        pytest.skip("the event loop counts on SQLite files only")
    sdk, threaded, refusals = _limited(server, monkeypatch, "ops-fast-locked", embeddings_requests=1000)
    assert _embed(sdk).headers["x-ratelimit-remaining-requests"] == "999"
    threaded.clear()
    assert _embed(sdk).headers["x-ratelimit-remaining-requests"] == "998"
    assert len(threaded) == len(refusals) <= 1 and refusals.locked_only()  # on the loop, unless locked
    threaded.clear()
    refusals.clear()

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(_embed, sdk)
            time.sleep(0.5)
            assert not waiting.done()
            health = httpx.get(server.v2.removesuffix("/v2") + "/health", timeout=5)
            assert health.status_code == 200  # the loop is not blocked by the lock
            blocker.execute("COMMIT")
            reply = waiting.result(timeout=60)
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()
    assert reply.headers["x-ratelimit-remaining-requests"] == "997"
    assert threaded == ["embeddings"]  # counted in a worker thread, once the lock was gone
    assert refusals == ["database is locked"]
    assert _embed(sdk).headers["x-ratelimit-remaining-requests"] == "996"


def test_admission_on_the_loop_counts_a_tenants_and_a_keys_limits_together_or_not_at_all(
    server: LiveServer,
) -> None:
    """Several counters (the tenant's and the key's, requests and tokens) are counted in one transaction: a
    locked database refuses the loop before anything is counted, and the worker thread then counts it all."""
    from inferline.keys import Principal

    path = server.container.db.sqlite_file
    if path is None:
        pytest.skip("the event loop counts on SQLite files only")
    limits = LimitService(server.container.db)
    principal = Principal("ops-fast-both", "key-b", "inference")
    limits.set("ops-fast-both", embeddings_requests=100, embeddings_tokens=10_000, window_seconds=10**8)
    limits.set("ops-fast-both", "key-b", embeddings_requests=50, window_seconds=10**8)

    def counts() -> dict[str, int]:
        with server.container.db.session() as s:
            rows = s.execute(
                select(RateCounter.subject, RateCounter.count).where(
                    RateCounter.subject.contains("ops-fast-both") | RateCounter.subject.contains("key-b")
                )
            )
            return {str(subject): int(count) for subject, count in rows}

    headers, _ = limits.admit(principal, "embeddings")  # reads the limits into the cache
    assert headers["x-ratelimit-remaining-requests"] == "49"  # the key's limit is the tighter
    assert limits.admit_now(principal, "embeddings")[0]["x-ratelimit-remaining-requests"] == "48"
    assert counts() == {"t:ops-fast-both:embeddings:req": 2, "k:key-b:embeddings:req": 2}

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(CounterBusy):
            limits.admit_now(principal, "embeddings")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert counts() == {"t:ops-fast-both:embeddings:req": 2, "k:key-b:embeddings:req": 2}
    assert limits.admit_now(principal, "embeddings")[0]["x-ratelimit-remaining-requests"] == "47"
    limits.close()


def test_a_lost_postgresql_counter_connection_sends_the_count_to_a_worker_thread(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: when the event loop's counter connections are gone (a restarted or failed-over server),
    the next request is still counted, once, in a worker thread; only that one (the next one tried another
    dead idle connection before `bdd24b3`), and the loop opens a new connection after it."""
    from sqlalchemy import text

    from inferline.ops.pg_counters import APPLICATION_NAME

    if server.container.db.is_sqlite:
        pytest.skip("PostgreSQL's counter connections")
    sdk, threaded, _ = _limited(server, monkeypatch, "ops-fast-pg-lost", embeddings_requests=1000)
    assert _embed(sdk).headers["x-ratelimit-remaining-requests"] == "999"

    def loop_connections(sql: str) -> list[Any]:
        with server.container.db.engine.connect() as conn:
            rows = conn.execute(text(sql), {"name": APPLICATION_NAME}).all()
            conn.commit()
        return list(rows)

    sent = 1
    for _ in range(10):  # concurrent requests leave several idle connections in the loop's pool
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: _embed(sdk, f"lost {i}"), range(16)))
        sent += 16
        if len(loop_connections("SELECT pid FROM pg_stat_activity WHERE application_name = :name")) >= 2:
            break
    threaded.clear()
    ended = loop_connections(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
    )
    assert len(ended) >= 2 and all(row[0] for row in ended)
    time.sleep(0.2)
    assert _embed(sdk).headers["x-ratelimit-remaining-requests"] == str(999 - sent)
    assert threaded == ["embeddings"]  # the loop's connections are gone: counted once in a worker thread
    assert _embed(sdk).headers["x-ratelimit-remaining-requests"] == str(998 - sent)
    assert threaded == ["embeddings"]  # and the loop counts again, on a new connection
