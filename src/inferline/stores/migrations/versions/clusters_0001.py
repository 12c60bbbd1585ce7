"""Clustering tasks, their clusters and nodes.

Revision ID: clusters_0001
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "clusters_0001"
down_revision = "0002"
branch_labels = ("clusters",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _task_fk() -> sa.Column:
    return sa.Column(
        "task_id",
        sa.String(36),
        sa.ForeignKey("clustering_tasks.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def upgrade() -> None:
    op.create_table(
        "clustering_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("files", sa.JSON(), nullable=True),
        sa.Column("prefix", sa.Text(), nullable=True),
        sa.Column("min_cluster_size", sa.Integer(), nullable=False),
        sa.Column("min_subcluster_size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("queue_job_id", sa.String(36), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("finished_at", nullable=True),
    )
    op.create_index("ix_clustering_tasks_tenant_created", "clustering_tasks", ["tenant_id", "created_at"])
    op.create_table(
        "clustering_clusters",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _task_fk(),
        sa.Column("cluster_id", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("header", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
    )
    op.create_table(
        "clustering_nodes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _task_fk(),
        sa.Column("cluster_id", sa.String(32), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("subcluster_id", sa.String(32), nullable=True),
        sa.Column("sub_rank", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("cx", sa.Float(), nullable=True),
        sa.Column("cy", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("clustering_nodes")
    op.drop_table("clustering_clusters")
    op.drop_table("clustering_tasks")
