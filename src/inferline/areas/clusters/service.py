"""Clustering tasks over embedded buckets: create, list, get, delete, the graph, and the `cluster_bucket` job.

The job reads the bucket's chunks from the database, clusters their vectors (`analysis`), has the chat model
name and summarise every cluster and sub-cluster (`naming`), and stores the result with a copy of each chunk's
text, so a later change to the bucket does not change a finished task.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from inferline.areas.clusters import graph
from inferline.areas.clusters.analysis import Clustering, Group, cluster, project_2d
from inferline.areas.clusters.chunks import Chunks, read_chunks
from inferline.areas.clusters.naming import Label, TextCompleter, name_cluster
from inferline.areas.clusters.protocol import PublicTextClusteringRequest
from inferline.errors import (
    BadRequest,
    InferlineError,
    NotFound,
    RateLimited,
    UpstreamTimeout,
    ValidationFailed,
)
from inferline.jobs import JobContext, JobFailed, JobQueue, JobView
from inferline.stores.clusters_tables import Cluster, ClusteringTask, ClusterNode
from inferline.stores.db import Database, get_owned, page_rows
from inferline.stores.embeddings_tables import EmbeddedBucket
from inferline.stores.objects import ObjectStore
from inferline.stores.tables import utcnow

log = logging.getLogger("inferline.clusters")
JOB_KIND = "cluster_bucket"
PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
MAX_CHUNKS = 20_000


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class ClusterService:
    """Clustering tasks of every tenant; each query filters by tenant."""

    def __init__(
        self,
        db: Database,
        jobs: JobQueue,
        objects: ObjectStore,
        chat: TextCompleter,
        *,
        max_chunks: int = MAX_CHUNKS,
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.objects = objects
        self.chat = chat
        self.max_chunks = max_chunks

    # -- requests ------------------------------------------------------------------------------------------
    def create(self, tenant_id: str, request: PublicTextClusteringRequest) -> str:
        """Queue a clustering task over an embedded bucket; its id."""
        if not self.objects.bucket_exists(tenant_id, request.bucket):
            raise NotFound(f"Bucket {request.bucket!r} does not exist.", pointer="/bucket")
        with self.db.session() as s:
            embedded = s.scalar(
                select(EmbeddedBucket.id).where(
                    EmbeddedBucket.tenant_id == tenant_id, EmbeddedBucket.bucket == request.bucket
                )
            )
            if embedded is None:
                raise ValidationFailed(
                    f"Bucket {request.bucket!r} is not embedded; embed it first with POST /v2/ai/embeddings.",
                    pointer="/bucket",
                )
            task = ClusteringTask(
                tenant_id=tenant_id,
                bucket=request.bucket,
                files=request.files,
                prefix=request.prefix,
                min_cluster_size=request.min_cluster_size,
                min_subcluster_size=request.min_subcluster_size,
                status=PENDING,
            )
            s.add(task)
            s.flush()
            task.queue_job_id = self.jobs.enqueue(JOB_KIND, {"task_id": task.id}, tenant_id, session=s)
            return task.id

    def list_tasks(self, tenant_id: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """One page of the tenant's tasks, newest first, and the total count."""
        with self.db.session() as s:
            rows, total = page_rows(
                s,
                ClusteringTask,
                ClusteringTask.tenant_id == tenant_id,
                ClusteringTask.created_at.desc(),
                ClusteringTask.id,
                offset=offset,
                limit=limit,
            )
            return [self._info(t) for t in rows], total

    @staticmethod
    def _info(task: ClusteringTask) -> dict[str, Any]:
        """The spec's `ClusteringRequestInfo`. `finished_at` is required there: until the task finishes it is
        the time of its last status change."""
        return {
            "task_id": task.id,
            "status": task.status,
            "bucket": task.bucket,
            "created_at": _iso(task.created_at),
            "finished_at": _iso(task.finished_at or task.updated_at),
            "min_cluster_size": task.min_cluster_size,
            "min_subcluster_size": task.min_subcluster_size,
        }

    def _task(self, s: Session, tenant_id: str, task_id: str) -> ClusteringTask:
        return get_owned(
            s, ClusteringTask, task_id, tenant_id, f"Clustering task {task_id!r} does not exist."
        )

    def get(self, tenant_id: str, task_id: str, top_n_nodes: int, show_subclusters: bool) -> dict[str, Any]:
        """The spec's `ClusteringStatusResponse`: each cluster with its `top_n_nodes` most central chunks and,
        with `show_subclusters`, its sub-clusters (and theirs). A failed task also says why in `error`."""
        with self.db.session() as s:
            task = self._task(s, tenant_id, task_id)
            clusters = s.scalars(select(Cluster).where(Cluster.task_id == task.id).order_by(Cluster.id)).all()
            nodes: dict[str, list[dict[str, str]]] = {}
            if top_n_nodes:
                top = s.scalars(
                    select(ClusterNode)
                    .where(ClusterNode.task_id == task.id, ClusterNode.rank < top_n_nodes)
                    .order_by(ClusterNode.rank)
                )
                for node in top:
                    nodes.setdefault(node.cluster_id or "", []).append(_node(node))
                if show_subclusters:
                    top_sub = s.scalars(
                        select(ClusterNode)
                        .where(ClusterNode.task_id == task.id, ClusterNode.sub_rank < top_n_nodes)
                        .order_by(ClusterNode.sub_rank)
                    )
                    for node in top_sub:
                        nodes.setdefault(node.subcluster_id or "", []).append(_node(node))
            views = {
                c.cluster_id: {
                    "cluster_id": c.cluster_id,
                    "cluster_header": c.header,
                    "cluster_summary": c.summary,
                    "total_number_of_nodes": c.size,
                    "nodes": nodes.get(c.cluster_id, []),
                }
                for c in clusters
            }
            top_level = [views[c.cluster_id] for c in clusters if c.parent_id is None]
            if show_subclusters:
                for view in top_level:
                    view["subclusters"] = []
                for c in clusters:
                    if c.parent_id is not None:
                        views[c.parent_id]["subclusters"].append(views[c.cluster_id])
            return {"status": task.status, "bucket": task.bucket, "clusters": top_level, "error": task.error}

    def delete(self, tenant_id: str, task_id: str) -> None:
        """Delete the task and its results; a task still queued or running is cancelled."""
        with self.db.session() as s:
            task = self._task(s, tenant_id, task_id)
            job_id = task.queue_job_id if task.status in (PENDING, RUNNING) else None
            s.execute(delete(ClusterNode).where(ClusterNode.task_id == task.id))
            s.execute(delete(Cluster).where(Cluster.task_id == task.id))
            s.delete(task)
        if job_id:
            self.jobs.cancel(job_id)

    def graph(self, tenant_id: str, task_id: str, cluster_id: int | None) -> bytes:
        """The PNG map of a completed task: every chunk coloured by cluster, or with `cluster_id`, that
        cluster's chunks coloured by sub-cluster."""
        with self.db.session() as s:
            task = self._task(s, tenant_id, task_id)
            if task.status != COMPLETED:
                raise BadRequest(
                    f"Clustering task {task_id!r} is {task.status}; its graph exists once it has completed.",
                    parameter="task_id",
                )
            if cluster_id is None:
                query = select(ClusterNode.x, ClusterNode.y, ClusterNode.cluster_id)
            else:  # one cluster on its own map, coloured by sub-cluster
                query = select(ClusterNode.cx, ClusterNode.cy, ClusterNode.subcluster_id)
                query = query.where(ClusterNode.cluster_id == str(cluster_id))
            query = query.where(ClusterNode.task_id == task.id)
            rows = s.execute(query.order_by(ClusterNode.id)).all()
        if cluster_id is not None and not rows:
            raise NotFound(
                f"Clustering task {task_id!r} has no cluster {cluster_id}.", parameter="cluster_id"
            )
        keys = sorted({r[2] for r in rows if r[2] is not None}, key=_id_order)
        index = {key: n for n, key in enumerate(keys)}
        groups = [index.get(r[2], -1) for r in rows]
        xy = np.array([(r[0], r[1]) for r in rows], dtype=np.float64).reshape(len(rows), 2)
        return graph.render(xy, groups, {n: key for key, n in index.items()})

    # -- the job -------------------------------------------------------------------------------------------
    def run(self, ctx: JobContext) -> None:
        """The `cluster_bucket` job handler."""
        task_id = ctx.payload["task_id"]
        with self.db.session() as s:
            task = s.get(ClusteringTask, task_id)
            if task is None:
                return  # deleted before it ran
            task.status, task.updated_at = RUNNING, utcnow()
            tenant_id, bucket = task.tenant_id, task.bucket
            files, prefix = task.files, task.prefix
            sizes = (task.min_cluster_size, task.min_subcluster_size)
        chunks = read_chunks(self.db, tenant_id, bucket, files, prefix)
        if not len(chunks):
            raise JobFailed(f"bucket {bucket!r} has no embedded chunks matching the files/prefix filters")
        if len(chunks) > self.max_chunks:
            raise JobFailed(
                f"{len(chunks)} chunks match; at most {self.max_chunks} can be clustered at once "
                "(narrow them with files or prefix)"
            )
        ctx.raise_if_cancelled()
        result = cluster(chunks.vectors, *sizes)
        labels: dict[str, Label] = {}
        for group in _walk(result.clusters):
            ctx.raise_if_cancelled()
            texts = [chunks.texts[i] for i in group.members]
            try:
                labels[group.cluster_id] = name_cluster(self.chat, tenant_id, texts, ctx.cancelled)
            except (RateLimited, UpstreamTimeout):
                raise  # transient: the queue retries the job with backoff
            except InferlineError as exc:
                ctx.raise_if_cancelled()  # a cancelled generation ends as a cancelled job
                raise JobFailed(f"naming cluster {group.cluster_id} failed: {exc.detail}") from None
        ctx.raise_if_cancelled()
        with self.db.session() as s:
            task = s.get(ClusteringTask, task_id)
            if task is None:
                return  # deleted while it ran
            s.execute(delete(ClusterNode).where(ClusterNode.task_id == task_id))
            s.execute(delete(Cluster).where(Cluster.task_id == task_id))
            self._store(s, task_id, chunks, result, labels)
            task.status, task.error = COMPLETED, None
            task.finished_at = task.updated_at = utcnow()

    @staticmethod
    def _store(
        s: Session, task_id: str, chunks: Chunks, result: Clustering, labels: dict[str, Label]
    ) -> None:
        assigned: dict[int, dict[str, Any]] = {}
        clusters = []
        for group in _walk(result.clusters):
            top = "." not in group.cluster_id
            own_map = project_2d(chunks.vectors[group.members]) if top else None
            for rank, i in enumerate(group.members):
                fields: dict[str, Any] = {"subcluster_id": group.cluster_id, "sub_rank": rank}
                if own_map is not None:
                    cx, cy = own_map[rank]
                    fields = {"cluster_id": group.cluster_id, "rank": rank, "cx": float(cx), "cy": float(cy)}
                assigned.setdefault(i, {}).update(fields)
            clusters.append(
                {
                    "task_id": task_id,
                    "cluster_id": group.cluster_id,
                    "parent_id": None if top else group.cluster_id.rsplit(".", 1)[0],
                    "header": labels[group.cluster_id].header,
                    "summary": labels[group.cluster_id].summary,
                    "size": len(group.members),
                }
            )
        if clusters:
            s.execute(Cluster.__table__.insert(), clusters)
        empty = dict.fromkeys(("cluster_id", "rank", "subcluster_id", "sub_rank", "cx", "cy"))
        nodes = [
            {
                "task_id": task_id,
                **empty,
                **assigned.get(i, {}),
                "filename": chunks.filenames[i],
                "chunk_index": chunks.chunk_indexes[i],
                "text": chunks.texts[i],
                "x": float(result.xy[i, 0]),
                "y": float(result.xy[i, 1]),
            }
            for i in range(len(chunks))
        ]
        for start in range(0, len(nodes), 1000):
            s.execute(ClusterNode.__table__.insert(), nodes[start : start + 1000])

    def fail_task(self, job: JobView, reason: str) -> None:
        """Failure hook: the job failed for good (or was cancelled), so the task did too."""
        with self.db.session() as s:
            task = s.get(ClusteringTask, job.payload.get("task_id", ""))
            if task is not None and task.status in (PENDING, RUNNING):
                task.status, task.error = FAILED, reason
                task.finished_at = task.updated_at = utcnow()


def _walk(groups: list[Group]) -> list[Group]:
    """Every cluster, each followed by its sub-clusters."""
    return [g for group in groups for g in (group, *_walk(group.subclusters))]


def _id_order(cluster_id: str) -> list[int]:
    return [int(part) for part in cluster_id.split(".")]


def _node(node: ClusterNode) -> dict[str, str]:
    return {"filename": node.filename, "text": node.text}
