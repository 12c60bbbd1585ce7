"""The job queue. Jobs are rows; a worker claims one by taking a lease that it renews while it runs.

A claim is a conditional UPDATE (only one claimer can win), preceded on PostgreSQL by a
`SELECT … FOR UPDATE SKIP LOCKED`, so concurrent workers never block on or double-run a job. A job whose
lease expired belongs to a worker that died: the next claim takes it over (counting an attempt), and once
`max_attempts` are spent it fails with a reason instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, event, or_, select, update
from sqlalchemy.orm import Session

from inferline.stores.db import Database
from inferline.stores.tables import Job, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"


class JobFailed(Exception):
    """Raised by a handler for a permanent failure: the job fails at once with this reason, no retry."""


@dataclass(frozen=True)
class JobView:
    """A read-only snapshot of a job row."""

    id: str
    tenant_id: str
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    error: str | None
    cancel_requested: bool
    created_at: datetime
    finished_at: datetime | None


def _view(row: Job) -> JobView:
    return JobView(
        row.id,
        row.tenant_id,
        row.kind,
        dict(row.payload or {}),
        row.status,
        row.attempts,
        row.max_attempts,
        row.error,
        row.cancel_requested,
        row.created_at,
        row.finished_at,
    )


class JobQueue:
    """Enqueue, claim, renew, finish and cancel jobs stored in the database.

    Workers of this process `subscribe`; every enqueued job wakes them once its transaction commits (workers
    in other processes find it at their next poll).
    """

    def __init__(self, db: Database, lease_seconds: float = 30.0) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each commit that enqueued a job."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify_after_commit(self, session: Session) -> None:
        if not self._listeners:
            return
        listeners = tuple(self._listeners)

        def notify(_: Session) -> None:
            for listener in listeners:
                listener()

        event.listen(session, "after_commit", notify, once=True)

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        tenant_id: str,
        *,
        session: Session | None = None,
        max_attempts: int = 3,
        delay_seconds: float = 0.0,
    ) -> str:
        """Add a job. Pass `session` to commit it atomically with the resource rows that need it."""
        row = Job(
            tenant_id=tenant_id,
            kind=kind,
            payload=payload,
            status=QUEUED,
            attempts=0,
            max_attempts=max_attempts,
            run_after=utcnow() + timedelta(seconds=delay_seconds),
            cancel_requested=False,
        )
        if session is not None:
            session.add(row)
            session.flush()
            self._notify_after_commit(session)
            return row.id
        with self.db.session() as s:
            s.add(row)
            s.flush()
            self._notify_after_commit(s)
            return row.id

    def get(self, job_id: str) -> JobView | None:
        with self.db.session() as s:
            row = s.get(Job, job_id)
            return _view(row) if row else None

    def claim(self, worker_id: str, kinds: list[str]) -> JobView | None:
        """Take the oldest runnable job of `kinds` (queued and due, or running with an expired lease).

        A returned job with status `failed` ran out of attempts while being taken over; it must not run.
        """
        now = utcnow()
        claimable = or_(
            and_(Job.status == QUEUED, Job.run_after <= now),
            and_(Job.status == RUNNING, Job.lease_expires_at < now),
        )
        for _ in range(5):
            with self.db.session() as s:
                query = (
                    select(Job.id, Job.status).where(claimable, Job.kind.in_(kinds)).order_by(Job.run_after)
                )
                if not self.db.is_sqlite:
                    query = query.with_for_update(skip_locked=True)
                candidate = s.execute(query.limit(1)).first()
                if candidate is None:
                    return None
                won = s.execute(
                    update(Job)
                    .where(Job.id == candidate.id, claimable)
                    .values(
                        status=RUNNING,
                        lease_owner=worker_id,
                        lease_expires_at=now + self.lease,
                        attempts=Job.attempts + 1,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                ).rowcount
                if won != 1:
                    continue  # another worker took it between the select and the update
                row = s.get(Job, candidate.id, populate_existing=True)
                assert row is not None
                if row.attempts > row.max_attempts:
                    # Its workers kept dying: fail it with a reason (the caller runs the failure hook).
                    reason = "the worker running this job stopped (lease expired) on every attempt"
                    self._finish(row, FAILED, f"{reason}; last error: {row.error}" if row.error else reason)
                return _view(row)
        return None

    def renew(self, job_id: str, worker_id: str) -> bool:
        """Extend the lease. Returns False if the job was cancelled or is no longer ours."""
        now = utcnow()
        with self.db.session() as s:
            renewed = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == RUNNING)
                .values(lease_expires_at=now + self.lease, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            row = s.get(Job, job_id)
            return bool(renewed) and row is not None and not row.cancel_requested

    def succeed(self, job_id: str, worker_id: str | None = None) -> None:
        """Record success; with `worker_id`, only while that worker still holds the lease."""
        with self.db.session() as s:
            row = s.get(Job, job_id, with_for_update=not self.db.is_sqlite)
            if row is not None and not self._lost(row, worker_id):
                self._finish(row, CANCELLED if row.cancel_requested else SUCCEEDED, None)

    def fail(self, job_id: str, reason: str, *, retry: bool, worker_id: str | None = None) -> bool:
        """Record a failed attempt. Requeues with backoff while attempts remain and `retry`; True if final.

        With `worker_id`, a worker whose lease was taken over records nothing (False): the job is the new
        owner's now.
        """
        with self.db.session() as s:
            row = s.get(Job, job_id, with_for_update=not self.db.is_sqlite)
            if row is None:
                return True
            if self._lost(row, worker_id):
                return False
            if row.cancel_requested:
                self._finish(row, CANCELLED, reason)
                return True
            if retry and row.attempts < row.max_attempts:
                row.status = QUEUED
                row.error = reason
                row.lease_owner = None
                row.lease_expires_at = None
                row.run_after = utcnow() + timedelta(seconds=min(60.0, 2.0**row.attempts))
                return False
            self._finish(row, FAILED, reason)
            return True

    def cancel(self, job_id: str) -> JobView | None:
        """Ask a job to stop: a queued job is cancelled at once, a running one at its next lease renewal."""
        with self.db.session() as s:
            row = s.get(Job, job_id)
            if row is None:
                return None
            if row.status == QUEUED:
                row.cancel_requested = True
                self._finish(row, CANCELLED, None)
            elif row.status == RUNNING:
                row.cancel_requested = True
            return _view(row)

    def counts(self) -> dict[str, int]:
        with self.db.session() as s:
            rows = s.execute(select(Job.status, Job.id)).all()
        out: dict[str, int] = {}
        for status, _ in rows:
            out[status] = out.get(status, 0) + 1
        return out

    @staticmethod
    def _lost(row: Job, worker_id: str | None) -> bool:
        """True if `worker_id` no longer holds this job (its lease expired and another worker took it)."""
        return worker_id is not None and (row.status != RUNNING or row.lease_owner != worker_id)

    @staticmethod
    def _finish(row: Job, status: str, error: str | None) -> None:
        row.status = status
        row.error = error
        row.lease_owner = None
        row.lease_expires_at = None
        row.finished_at = utcnow()
