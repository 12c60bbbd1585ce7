"""Durable background jobs: a database-backed queue with leases, and the worker that runs handlers."""

from inferline.jobs.queue import JobFailed, JobQueue, JobView
from inferline.jobs.worker import JobContext, JobRegistry, Worker

__all__ = ["JobContext", "JobFailed", "JobQueue", "JobRegistry", "JobView", "Worker"]
