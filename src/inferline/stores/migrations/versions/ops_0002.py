"""Operations: storage reservations (bytes of bucket writes in progress, held against the tenant's quota).

Revision ID: ops_0002
Revises: ops_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "ops_0002"
down_revision = "ops_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storage_reservations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("storage_reservations")
