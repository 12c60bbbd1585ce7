"""Leases under faults: a worker whose lease was taken over cannot overwrite the new owner's outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from inferline.jobs import JobContext, JobQueue, JobRegistry, Worker
from inferline.stores.db import Database
from inferline.stores.tables import Job, utcnow
from tests.databases import DatabaseFactory


@pytest.fixture
def queue(databases: DatabaseFactory) -> Iterator[JobQueue]:
    db = Database(databases.new("leases"))
    db.migrate()
    yield JobQueue(db, lease_seconds=1.0)
    db.dispose()


def expire(queue: JobQueue, job_id: str) -> None:
    with queue.db.session() as s:
        s.get(Job, job_id).lease_expires_at = utcnow()  # type: ignore[union-attr]


def test_stale_worker_outcomes_are_ignored(queue: JobQueue) -> None:
    job_id = queue.enqueue("work", {}, "t1")
    assert queue.claim("stale", ["work"]) is not None
    expire(queue, job_id)
    taken = queue.claim("fresh", ["work"])
    assert taken is not None and taken.id == job_id and taken.attempts == 2

    assert queue.fail(job_id, "boom", retry=False, worker_id="stale") is False
    queue.succeed(job_id, worker_id="stale")
    assert not queue.renew(job_id, "stale")
    job = queue.get(job_id)
    assert job is not None and job.status == "running" and job.error is None

    queue.succeed(job_id, worker_id="fresh")
    assert queue.get(job_id).status == "succeeded"  # type: ignore[union-attr]


def test_a_stalled_worker_is_told_to_stop_when_its_lease_is_taken(queue: JobQueue) -> None:
    """The slow worker's renewals fail once another worker took the job; it stops and records nothing."""
    started, stopped = threading.Event(), threading.Event()

    def slow(ctx: JobContext) -> None:
        started.set()
        try:
            while True:
                ctx.raise_if_cancelled()
                time.sleep(0.02)
        finally:
            stopped.set()

    registry = JobRegistry()
    registry.register("work", slow)
    job_id = queue.enqueue("work", {}, "t1")
    stale = Worker(queue, registry, worker_id="stale", poll_seconds=0.05)
    stale.start()
    try:
        assert started.wait(10)
        # Another worker takes over as if the stale one had gone silent past its lease (retried in case
        # a renewal of the stale worker lands between the two steps).
        for _ in range(20):
            expire(queue, job_id)
            if queue.claim("fresh", ["work"]) is not None:
                break
        else:
            raise AssertionError("the job could not be taken over")
        assert stopped.wait(10), "the stale handler kept running after losing its lease"
    finally:
        stale.stop()
    job = queue.get(job_id)
    assert job is not None and job.status == "running" and job.attempts == 2 and job.error is None
    queue.succeed(job_id, worker_id="fresh")
    assert queue.get(job_id).status == "succeeded"  # type: ignore[union-attr]
