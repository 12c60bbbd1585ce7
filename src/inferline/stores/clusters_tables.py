"""Tables of the clusters area: clustering tasks, the clusters they found and the chunks (nodes) in them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inferline.stores.tables import Base, UTCDateTime, new_id, utcnow


class ClusteringTask(Base):
    """One `POST /ai/clusters` request over an embedded bucket, run as the durable job `cluster_bucket`.

    `status` is a spec `TaskStatus`: pending, running, completed or failed (`error` says why)."""

    __tablename__ = "clustering_tasks"
    __table_args__ = (Index("ix_clustering_tasks_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    bucket: Mapped[str] = mapped_column(String(63))
    files: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    prefix: Mapped[str | None] = mapped_column(Text, nullable=True)
    min_cluster_size: Mapped[int] = mapped_column(Integer)
    min_subcluster_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    queue_job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Cluster(Base):
    """A cluster (`parent_id` None, `cluster_id` "0", "1", …) or a sub-cluster ("0.0", "0.1", …) of a task,
    named and summarised by the chat model."""

    __tablename__ = "clustering_clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("clustering_tasks.id", ondelete="CASCADE"), index=True
    )
    cluster_id: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    header: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)


class ClusterNode(Base):
    """One chunk of a task: its cluster (None: noise) and sub-cluster, its centrality rank in each (0 is the
    most central), a copy of its text, its position (`x`, `y`) on the task's 2-D map and (`cx`, `cy`) on its
    cluster's own map."""

    __tablename__ = "clustering_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("clustering_tasks.id", ondelete="CASCADE"), index=True
    )
    cluster_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subcluster_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sub_rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    filename: Mapped[str] = mapped_column(String(1024))
    chunk_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    cx: Mapped[float | None] = mapped_column(Float, nullable=True)
    cy: Mapped[float | None] = mapped_column(Float, nullable=True)
