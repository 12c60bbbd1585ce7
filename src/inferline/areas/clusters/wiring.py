"""Builds the clusters area: clustering tasks over embedded buckets, named by the chat service."""

from __future__ import annotations

from inferline.areas.clusters.naming import TextCompleter
from inferline.areas.clusters.service import JOB_KIND, ClusterService
from inferline.jobs import JobQueue, JobRegistry
from inferline.stores.db import Database
from inferline.stores.objects import ObjectStore


def build_clusters(
    db: Database, jobs: JobQueue, registry: JobRegistry, objects: ObjectStore, chat: TextCompleter
) -> ClusterService:
    service = ClusterService(db, jobs, objects, chat)
    registry.register(JOB_KIND, service.run, on_failure=service.fail_task)
    return service
