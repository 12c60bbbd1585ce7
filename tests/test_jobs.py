"""The durable job queue on a real database: run, retry, permanent failure, lease takeover, cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from inferline.jobs import JobContext, JobFailed, JobQueue, JobRegistry, Worker
from inferline.stores.db import Database
from tests.databases import DatabaseFactory


@pytest.fixture
def queue(databases: DatabaseFactory) -> Iterator[JobQueue]:
    db = Database(databases.new("jobs"))
    db.migrate()
    yield JobQueue(db, lease_seconds=1.0)
    db.dispose()


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_job_runs_once_and_succeeds(queue: JobQueue) -> None:
    seen: list[dict] = []
    registry = JobRegistry()
    registry.register("echo", lambda ctx: seen.append(ctx.payload))
    job_id = queue.enqueue("echo", {"n": 1}, "t1")
    worker = Worker(queue, registry)
    assert worker.run_once() and not worker.run_once()
    assert seen == [{"n": 1}]
    assert queue.get(job_id).status == "succeeded"  # type: ignore[union-attr]


def test_crash_is_retried_then_fails_with_reason_and_hook(queue: JobQueue) -> None:
    failures: list[str] = []
    registry = JobRegistry()

    def boom(ctx: JobContext) -> None:
        raise RuntimeError("disk on fire")

    registry.register("boom", boom, on_failure=lambda job, reason: failures.append(reason))
    job_id = queue.enqueue("boom", {}, "t1", max_attempts=2)
    worker = Worker(queue, registry)
    worker.run_once()
    job = queue.get(job_id)
    assert job.status == "queued" and job.attempts == 1  # type: ignore[union-attr]
    with queue.db.session() as s:  # skip the backoff delay
        from inferline.stores.tables import Job, utcnow

        s.get(Job, job_id).run_after = utcnow()  # type: ignore[union-attr]
    worker.run_once()
    job = queue.get(job_id)
    assert job.status == "failed" and "disk on fire" in job.error  # type: ignore[union-attr, operator]
    assert failures == ["RuntimeError: disk on fire"]


def test_permanent_failure_is_not_retried(queue: JobQueue) -> None:
    registry = JobRegistry()

    def bad(ctx: JobContext) -> None:
        raise JobFailed("training file is not JSONL")

    registry.register("bad", bad)
    job_id = queue.enqueue("bad", {}, "t1")
    Worker(queue, registry).run_once()
    job = queue.get(job_id)
    assert job.status == "failed" and job.attempts == 1 and job.error == "training file is not JSONL"  # type: ignore[union-attr]


def test_expired_lease_is_taken_over_by_another_worker(queue: JobQueue) -> None:
    job_id = queue.enqueue("work", {}, "t1")
    assert queue.claim("dead-worker", ["work"]) is not None  # claimed, then the worker "dies"
    assert queue.claim("other", ["work"]) is None  # lease still valid
    time.sleep(1.1)
    ran: list[str] = []
    registry = JobRegistry()
    registry.register("work", lambda ctx: ran.append(ctx.job.id))
    assert Worker(queue, registry, worker_id="other").run_once()
    assert ran == [job_id] and queue.get(job_id).status == "succeeded"  # type: ignore[union-attr]


def test_job_whose_workers_keep_dying_fails_with_reason(queue: JobQueue) -> None:
    job_id = queue.enqueue("work", {}, "t1", max_attempts=1)
    assert queue.claim("dead-1", ["work"]) is not None
    time.sleep(1.1)
    hooked: list[str] = []
    registry = JobRegistry()
    registry.register("work", lambda ctx: None, on_failure=lambda job, reason: hooked.append(reason))
    Worker(queue, registry).run_once()
    job = queue.get(job_id)
    assert job.status == "failed" and "lease expired" in job.error  # type: ignore[union-attr, operator]
    assert hooked and "lease expired" in hooked[0]


def test_cancel_queued_and_running(queue: JobQueue) -> None:
    queued = queue.enqueue("slow", {}, "t1")
    assert queue.cancel(queued).status == "cancelled"  # type: ignore[union-attr]

    started = threading.Event()

    def slow(ctx: JobContext) -> None:
        started.set()
        while True:
            ctx.raise_if_cancelled()
            time.sleep(0.05)

    registry = JobRegistry()
    registry.register("slow", slow)
    running = queue.enqueue("slow", {}, "t1")
    worker = Worker(queue, registry, poll_seconds=0.05)
    worker.start()
    try:
        assert started.wait(5)
        queue.cancel(running)
        wait_for(lambda: queue.get(running).status == "cancelled")  # type: ignore[union-attr]
    finally:
        worker.stop()


def test_concurrent_workers_never_run_a_job_twice(queue: JobQueue) -> None:
    runs: list[str] = []
    lock = threading.Lock()

    def record(ctx: JobContext) -> None:
        with lock:
            runs.append(ctx.job.id)

    registry = JobRegistry()
    registry.register("count", record)
    ids = {queue.enqueue("count", {"i": i}, "t1") for i in range(40)}
    workers = [Worker(queue, registry, concurrency=2, poll_seconds=0.01) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: len(runs) >= 40)
        time.sleep(0.2)
    finally:
        for w in workers:
            w.stop()
    assert sorted(runs) == sorted(ids)
