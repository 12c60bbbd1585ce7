"""Approximate vector search: a log of deleted chunk ids (local HNSW index files catch up from it), chunk ids
indexed per bucket, and on PostgreSQL a pgvector HNSW index per vector width.

pgvector's HNSW needs a fixed width while `embedding` is an untyped `vector`, so each width gets a partial
expression index `((embedding::vector(d)) vector_ip_ops) WHERE vector_dims(embedding) = d` (inner product:
stored vectors are unit length). Widths present in the table and 384 (the default model) are indexed here;
`PgVectorIndex` adds the index for a new width the first time it stores one.

Revision ID: embeddings_0005
Revises: embeddings_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "embeddings_0005"
down_revision = "embeddings_0004"
branch_labels = None
depends_on = None

_HAS_COLUMN = (
    "SELECT count(*) FROM information_schema.columns "
    "WHERE table_name = 'embedding_chunks' AND column_name = 'embedding'"
)
MAX_HNSW_DIMS = 2000  # pgvector's limit for an HNSW index on `vector`


def upgrade() -> None:
    op.create_table(
        "embedding_chunk_deletions",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("chunk_id", sa.Integer(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_embedding_chunk_deletions_bucket", "embedding_chunk_deletions", ["tenant_id", "bucket", "seq"]
    )
    op.create_table(
        "embedding_deletion_floors",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.String(63), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
    )
    op.create_index("ix_embedding_chunks_bucket_id", "embedding_chunks", ["tenant_id", "bucket", "id"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(sa.text(_HAS_COLUMN)).scalar():
        present = bind.execute(
            sa.text(
                "SELECT DISTINCT vector_dims(embedding) FROM embedding_chunks WHERE embedding IS NOT NULL"
            )
        ).scalars()
        for dims in sorted({384, *present}):
            if 0 < dims <= MAX_HNSW_DIMS:
                op.execute(
                    f"CREATE INDEX IF NOT EXISTS ix_embedding_chunks_hnsw_{dims} ON embedding_chunks "
                    f"USING hnsw ((embedding::vector({dims})) vector_ip_ops) "
                    f"WHERE vector_dims(embedding) = {dims}"
                )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        names = bind.execute(
            sa.text("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_embedding_chunks_hnsw_%'")
        ).scalars()
        for name in list(names):
            op.execute(f'DROP INDEX IF EXISTS "{name}"')
    op.drop_index("ix_embedding_chunks_bucket_id", "embedding_chunks")
    op.drop_table("embedding_deletion_floors")
    op.drop_table("embedding_chunk_deletions")
