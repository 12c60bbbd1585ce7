"""The worker: claims jobs, runs their handlers, keeps their leases alive, records the outcome.

Runs inside the API process (embedded default) or alone as `inferline worker`; both use the same registry,
built by the composition root.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from inferline.jobs.queue import FAILED, JobFailed, JobQueue, JobView

log = logging.getLogger("inferline.jobs")


class JobCancelled(Exception):
    """Raised by `JobContext.raise_if_cancelled` once the job was cancelled."""


@dataclass
class JobContext:
    """What a handler gets: the job and a cancellation flag kept current by the lease renewer."""

    job: JobView
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def payload(self) -> dict:  # type: ignore[type-arg]
        return self.job.payload

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job.id} was cancelled")


Handler = Callable[[JobContext], None]
FailureHook = Callable[[JobView, str], None]


@dataclass
class _Registration:
    handler: Handler
    on_failure: FailureHook | None


class JobRegistry:
    """Job kind (`verb_noun`) -> handler, plus an optional hook run once a job has failed for good."""

    def __init__(self) -> None:
        self._kinds: dict[str, _Registration] = {}

    def register(self, kind: str, handler: Handler, on_failure: FailureHook | None = None) -> None:
        self._kinds[kind] = _Registration(handler, on_failure)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    def get(self, kind: str) -> _Registration:
        return self._kinds[kind]


class Worker:
    """Polls the queue with `concurrency` threads until `stop()`."""

    def __init__(
        self,
        queue: JobQueue,
        registry: JobRegistry,
        *,
        concurrency: int = 1,
        poll_seconds: float = 0.2,
        worker_id: str | None = None,
    ) -> None:
        self.queue = queue
        self.registry = registry
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._threads:
            return
        self.queue.subscribe(self.notify)  # enqueues in this process wake us after their commit
        for n in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"inferline-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """Wake idle threads now (the queue calls it after a commit that enqueued a job)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self.queue.unsubscribe(self.notify)
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def run_once(self) -> bool:
        """Claim and run one job; False when none was runnable."""
        if not self.registry.kinds:
            return False
        job = self.queue.claim(self.worker_id, self.registry.kinds)
        if job is None:
            return False
        registration = self.registry.get(job.kind)
        if job.status == FAILED:
            self._final_failure(registration, job, job.error or "failed")
            return True
        self._run(registration, job)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once()
            except Exception:
                log.exception("worker loop error")
                ran = False
            if not ran:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def _run(self, registration: _Registration, job: JobView) -> None:
        ctx = JobContext(job)
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(job.id, ctx, done), daemon=True)
        renewer.start()
        started = time.monotonic()
        log.info("job %s (%s) started, attempt %d of %d", job.id, job.kind, job.attempts, job.max_attempts)
        try:
            registration.handler(ctx)
        except JobCancelled:
            log.info("job %s (%s) cancelled after %.1f s", job.id, job.kind, time.monotonic() - started)
            self.queue.fail(job.id, "cancelled", retry=False, worker_id=self.worker_id)
        except JobFailed as exc:
            log.warning(
                "job %s (%s) failed after %.1f s: %s", job.id, job.kind, time.monotonic() - started, exc
            )
            if self.queue.fail(job.id, str(exc), retry=False, worker_id=self.worker_id):
                self._final_failure(registration, job, str(exc))
        except Exception as exc:
            log.exception("job %s (%s) failed after %.1f s", job.id, job.kind, time.monotonic() - started)
            reason = f"{type(exc).__name__}: {exc}"
            if self.queue.fail(job.id, reason, retry=True, worker_id=self.worker_id):
                self._final_failure(registration, job, reason)
        else:
            log.info("job %s (%s) succeeded in %.1f s", job.id, job.kind, time.monotonic() - started)
            self.queue.succeed(job.id, worker_id=self.worker_id)
        finally:
            done.set()
            renewer.join()

    def _renew(self, job_id: str, ctx: JobContext, done: threading.Event) -> None:
        interval = min(2.0, self.queue.lease.total_seconds() / 3)
        while not done.wait(interval):
            try:
                if not self.queue.renew(job_id, self.worker_id):
                    ctx.cancelled.set()
            except Exception:
                log.exception("lease renewal failed for job %s", job_id)

    def _final_failure(self, registration: _Registration, job: JobView, reason: str) -> None:
        if registration.on_failure is None:
            return
        try:
            registration.on_failure(job, reason)
        except Exception:
            log.exception("failure hook of job %s (%s) raised", job.id, job.kind)
