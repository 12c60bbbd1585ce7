"""Chunk ids are never reused on SQLite either (AUTOINCREMENT), so the vector cache can refresh incrementally.

Revision ID: embeddings_0003
Revises: embeddings_0002
"""

from alembic import op

revision = "embeddings_0003"
down_revision = "embeddings_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # PostgreSQL sequences never hand out an id twice already
        with op.batch_alter_table(
            "embedding_chunks", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    pass
