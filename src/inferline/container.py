"""The composition root: the one place that picks implementations. Shared by the API and worker processes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from inferline.config import Settings
from inferline.jobs import JobQueue, JobRegistry, Worker
from inferline.services.keys import ApiKeyService
from inferline.services.models import ModelService
from inferline.stores.db import Database

log = logging.getLogger("inferline")


@dataclass
class Container:
    """Everything a request or a job needs, built once per process."""

    settings: Settings
    db: Database
    keys: ApiKeyService
    models: ModelService
    jobs: JobQueue
    job_registry: JobRegistry
    worker: Worker | None = None

    def start_worker(self) -> Worker:
        """Start a worker over this container's registry (embedded in the API, or `inferline worker`)."""
        if self.worker is None:
            self.worker = Worker(self.jobs, self.job_registry, concurrency=self.settings.worker_concurrency)
            self.worker.start()
        return self.worker

    def wake_worker(self) -> None:
        """Tell an embedded worker a job was just enqueued."""
        if self.worker is not None:
            self.worker.notify()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.db.dispose()


def build_container(settings: Settings) -> Container:
    """Create stores and services from `settings`, migrate the database and seed the configured key."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    keys = ApiKeyService(db)
    if settings.api_key:
        keys.ensure(settings.api_key)
    models = ModelService(settings.models_dir, settings.profile, default_chat=settings.chat_model)
    jobs = JobQueue(db, lease_seconds=settings.job_lease_seconds)
    registry = JobRegistry()
    return Container(settings=settings, db=db, keys=keys, models=models, jobs=jobs, job_registry=registry)
