"""Embedded buckets get a claim (`busy_task`, `busy_until`) so one bucket's tasks never run at the same time.

Revision ID: embeddings_0002
Revises: embeddings_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "embeddings_0002"
down_revision = "embeddings_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("embedded_buckets") as batch:
        batch.add_column(sa.Column("busy_task", sa.String(36), nullable=True))
        batch.add_column(sa.Column("busy_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("embedded_buckets") as batch:
        batch.drop_column("busy_until")
        batch.drop_column("busy_task")
