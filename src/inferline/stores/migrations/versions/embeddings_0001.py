"""Embedding tasks, embedded buckets, per-file status and the chunk/vector table (+ pgvector on PostgreSQL).

Revision ID: embeddings_0001
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "embeddings_0001"
down_revision = "0002"
branch_labels = ("embeddings",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "embedding_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("task_name", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("finished_at", nullable=True),
    )
    op.create_table(
        "embedded_buckets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("embedding_model", sa.String(200), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("loader", sa.String(32), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("tenant_id", "bucket"),
    )
    op.create_table(
        "embedded_files",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("settings_key", sa.String(300), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_reason", sa.Text(), nullable=True),
        sa.Column("chunks", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("last_embedded_at", nullable=True),
        sa.UniqueConstraint("tenant_id", "bucket", "filename"),
    )
    op.create_table(
        "embedding_chunks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("loader_metadata", sa.JSON(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_embedding_chunks_bucket", "embedding_chunks", ["tenant_id", "bucket", "filename"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        available = bind.execute(
            sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
        if available:
            op.execute("CREATE EXTENSION IF NOT EXISTS vector")
            op.execute("ALTER TABLE embedding_chunks ADD COLUMN embedding vector")


def downgrade() -> None:
    for table in ("embedding_chunks", "embedded_files", "embedded_buckets", "embedding_tasks"):
        op.drop_table(table)
